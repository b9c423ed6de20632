// Command fakepfctl stands in for OpenBSD's pfctl(8) in tests: it keeps
// pf tables as files under $FAKEPFCTL_DIR and implements the table
// commands Rampart uses, with pfctl's table file format and messages.
//
//	pfctl -s Tables | -s memory
//	pfctl -t TABLE -T show | flush | replace -f FILE | add -f FILE | delete -f FILE
//	pfctl -k HOST
//
// Every command line is appended to $FAKEPFCTL_DIR/log, followed by the
// entries of the file it loaded (indented), so tests can keep the exact
// command lines in golden files. Tables exist when a file
// $FAKEPFCTL_DIR/tables/NAME exists (pf.conf declared them); the
// table-entries limit (default 200000) is read from $FAKEPFCTL_DIR/limit.
// Anything else is a usage error, as with the real pfctl.
package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func main() {
	dir := os.Getenv("FAKEPFCTL_DIR")
	if dir == "" {
		fail("FAKEPFCTL_DIR is not set")
	}
	logf, err := os.OpenFile(filepath.Join(dir, "log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fail(err.Error())
	}
	defer logf.Close()
	fmt.Fprintf(logf, "pfctl %s\n", strings.Join(os.Args[1:], " "))

	var table, cmd, file, show, kill string
	args := os.Args[1:]
	for len(args) > 0 {
		if len(args) < 2 {
			usage()
		}
		switch args[0] {
		case "-t":
			table = args[1]
		case "-T":
			cmd = args[1]
		case "-f":
			file = args[1]
		case "-s":
			show = args[1]
		case "-k":
			kill = args[1]
		default:
			usage()
		}
		args = args[2:]
	}
	tables := filepath.Join(dir, "tables")
	switch {
	case show == "Tables" && table == "" && cmd == "":
		names, _ := os.ReadDir(tables)
		for _, n := range names {
			fmt.Println(n.Name())
		}
	case show == "memory" && table == "" && cmd == "":
		fmt.Printf("states        hard limit    10000\nsrc-nodes     hard limit    10000\nfrags         hard limit    65536\ntables        hard limit     1000\ntable-entries hard limit %8d\npktdelay-pkts hard limit    10000\nanchors       hard limit      512\n", limit(dir))
	case kill != "" && table == "" && cmd == "":
		if _, err := parseHost(kill); err != nil {
			fail("invalid host " + kill)
		}
		fmt.Fprintf(os.Stderr, "killed 0 states from 1 sources and 0 destinations\n")
	case table != "" && show == "" && kill == "":
		tableCmd(dir, filepath.Join(tables, table), cmd, file, logf)
	default:
		usage()
	}
}

func tableCmd(dir, path, cmd, file string, logf *os.File) {
	needFile := cmd == "replace" || cmd == "add" || cmd == "delete"
	if needFile != (file != "") {
		usage()
	}
	var load []netip.Prefix
	if needFile {
		load = readFile(file)
		for _, p := range load {
			fmt.Fprintf(logf, "\t%s\n", format(p))
		}
	}
	cur, exists := readTable(path)
	if !exists && cmd != "replace" && cmd != "add" {
		fail("Table does not exist.")
	}
	next := map[netip.Prefix]bool{}
	for p := range cur {
		next[p] = true
	}
	switch cmd {
	case "show":
		for _, p := range sorted(cur) {
			fmt.Printf("   %s\n", format(p))
		}
		return
	case "flush":
		next = map[netip.Prefix]bool{}
	case "replace":
		next = map[netip.Prefix]bool{}
		for _, p := range load {
			next[p] = true
		}
	case "add":
		for _, p := range load {
			next[p] = true
		}
	case "delete":
		for _, p := range load {
			delete(next, p)
		}
	default:
		usage()
	}
	// The table-entries limit covers every table; pf refuses the whole
	// ioctl rather than loading part of it.
	if total := otherEntries(dir, path) + len(next); total > limit(dir) && len(next) > len(cur) {
		fail("Cannot allocate memory.")
	}
	added, deleted := 0, 0
	for p := range next {
		if !cur[p] {
			added++
		}
	}
	for p := range cur {
		if !next[p] {
			deleted++
		}
	}
	if !exists {
		fmt.Fprintln(os.Stderr, "1 table created.")
	}
	writeTable(path, next)
	switch cmd {
	case "add":
		fmt.Fprintf(os.Stderr, "%d/%d addresses added.\n", added, len(load))
	case "delete":
		fmt.Fprintf(os.Stderr, "%d/%d addresses deleted.\n", deleted, len(load))
	case "flush":
		fmt.Fprintf(os.Stderr, "%d addresses deleted.\n", deleted)
	default:
		if added == 0 && deleted == 0 {
			fmt.Fprintln(os.Stderr, "no changes.")
		}
		if added > 0 {
			fmt.Fprintf(os.Stderr, "%d addresses added.\n", added)
		}
		if deleted > 0 {
			fmt.Fprintf(os.Stderr, "%d addresses deleted.\n", deleted)
		}
	}
}

// readFile parses a table file as pfctl does: entries separated by
// whitespace or newlines, # starts a comment. Hostnames (which the real
// pfctl resolves) and negation are not used by Rampart and are refused.
func readFile(file string) []netip.Prefix {
	f, err := os.Open(file)
	if err != nil {
		fail(fmt.Sprintf("cannot open the main config file!: %v", err))
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, w := range strings.Fields(line) {
			p, err := parseHost(w)
			if err != nil {
				fail(fmt.Sprintf("%s:%d: could not parse host specification", file, n))
			}
			out = append(out, p)
		}
	}
	return out
}

func parseHost(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func format(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func readTable(path string) (map[netip.Prefix]bool, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return map[netip.Prefix]bool{}, false
	}
	m := map[netip.Prefix]bool{}
	for _, w := range strings.Fields(string(b)) {
		p, err := parseHost(w)
		if err != nil {
			fail("corrupt table " + path)
		}
		m[p] = true
	}
	return m, true
}

func writeTable(path string, m map[netip.Prefix]bool) {
	var b strings.Builder
	for _, p := range sorted(m) {
		b.WriteString(format(p) + "\n")
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fail(err.Error())
	}
}

func sorted(m map[netip.Prefix]bool) []netip.Prefix {
	var ps []netip.Prefix
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
	return ps
}

func otherEntries(dir, self string) int {
	n := 0
	names, _ := os.ReadDir(filepath.Join(dir, "tables"))
	for _, e := range names {
		p := filepath.Join(dir, "tables", e.Name())
		if p == self {
			continue
		}
		m, _ := readTable(p)
		n += len(m)
	}
	return n
}

func limit(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "limit"))
	if err != nil {
		return 200000
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		fail("bad limit file")
	}
	return n
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pfctl [-anPqrvz] [-D macro=value] [-F modifier] [-f file] [-i interface] [-K key] [-k key] [-L statefile] [-o level] [-p device] [-S statefile] [-s modifier [-R id]] [-t table -T command [address ...]] [-V rdomain] [-x level]")
	os.Exit(1)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "pfctl: "+msg)
	os.Exit(1)
}
