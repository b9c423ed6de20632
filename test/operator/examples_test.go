package operator

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func readYAML(t *testing.T, rel string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir(), rel))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return m
}

// get walks a decoded YAML document: get(m, "audit", "file").
func get(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

func str(m any, keys ...string) string {
	s, _ := get(m, keys...).(string)
	return s
}

func readText(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestExamplesAgree checks that the example configs, units and monitoring
// files name the same paths and ports: what one piece writes is where the
// other reads, and no two daemons on one host share a port.
func TestExamplesAgree(t *testing.T) {
	bastion := readYAML(t, "bastion/bastion.yaml")
	agent := readYAML(t, "blocklist/agent.yaml")
	bld := readYAML(t, "blocklist/blocklistd.yaml")
	acme := readYAML(t, "acme/acme.yaml")
	pki := readYAML(t, "pki/pki.yaml")
	readme := readText(t, "README.md")

	// The bastion's audit log is what the agent's bastion detector reads.
	audit := str(bastion, "audit", "file")
	var detector string
	for _, d := range get(agent, "detectors").([]any) {
		if str(d, "name") == "bastion" {
			detector = str(d, "file")
		}
	}
	if audit == "" || audit != detector {
		t.Errorf("bastion.yaml audit.file %q, but agent.yaml's bastion detector reads %q", audit, detector)
	}
	if !strings.Contains(readme, "`"+audit+"`") {
		t.Errorf("examples/README.md does not name the audit log %s", audit)
	}

	// One textfile directory for acme-renew and pki renew, writable by
	// both units.
	textfile := filepath.Dir(str(acme, "metrics_textfile"))
	pkiRenew := readText(t, "pki/systemd/rampart-pki-renew@.service")
	if m := regexp.MustCompile(`--textfile (\S+)/rampart_pki_%i\.prom`).FindStringSubmatch(pkiRenew); m == nil || m[1] != textfile {
		t.Errorf("acme.yaml writes its textfile to %s; rampart-pki-renew@.service writes to %v", textfile, m)
	}
	if !strings.Contains(pkiRenew, textfile) || !strings.Contains(readText(t, "acme/acme-renew.service"), textfile) {
		t.Errorf("the acme and pki renewal units do not both make %s writable", textfile)
	}
	if !strings.Contains(readme, "`"+textfile+"/`") {
		t.Errorf("examples/README.md does not name the textfile directory %s", textfile)
	}

	// Certificates: every client and server certificate is a directory
	// `pki bootstrap --out` writes under /etc/rampart/tls.
	const tlsDir = "/etc/rampart/tls/"
	for what, p := range map[string]string{
		"agent.yaml server.cert_dir":    str(agent, "server", "cert_dir") + "/",
		"blocklistd.yaml tls.cert":      str(bld, "tls", "cert"),
		"blocklistd.yaml tls.key":       str(bld, "tls", "key"),
		"blocklistd.yaml tls.client_ca": str(bld, "tls", "client_ca"),
		"blocklistd.yaml cli.cert":      str(bld, "cli", "cert"),
	} {
		if !strings.HasPrefix(p, tlsDir) {
			t.Errorf("%s is %q, not under %s", what, p, tlsDir)
		}
	}
	if !strings.Contains(readText(t, "bastion/bastion.yaml"), "cert_file: "+tlsDir+"bastion/cert.pem") {
		t.Errorf("bastion.yaml's blocklist reporter certificate is not in %sbastion/", tlsDir)
	}
	if !strings.Contains(pkiRenew, "--dir "+tlsDir+"%i") {
		t.Errorf("rampart-pki-renew@.service does not renew %s%%i", tlsDir)
	}

	// State directories match the units' StateDirectory=.
	for what, c := range map[string]struct{ path, unit string }{
		"bastion state_dir":        {str(bastion, "state_dir"), "bastion/bastion.service"},
		"agent state_dir":          {str(agent, "state_dir"), "blocklist/blocklist-agent.service"},
		"blocklistd store.path":    {filepath.Dir(str(bld, "store", "path")), "blocklist/blocklistd.service"},
		"acme state_dir":           {str(acme, "state_dir"), "acme/acme-renew.service"},
		"bastion audit directory":  {filepath.Dir(audit), "bastion/bastion.service"},
		"bastion recordings (doc)": {"/var/lib/rampart/bastion", "bastion/bastion.service"},
	} {
		unit := readText(t, c.unit)
		rel := strings.TrimPrefix(strings.TrimPrefix(c.path, "/var/lib/"), "/var/log/")
		if !regexp.MustCompile(`(?m)^(StateDirectory|LogsDirectory)=` + regexp.QuoteMeta(rel) + `$`).MatchString(unit) {
			t.Errorf("%s is %s, but %s has no StateDirectory=/LogsDirectory=%s", what, c.path, c.unit, rel)
		}
	}
	if rec := readText(t, "bastion/recorded-targets.yaml"); !strings.Contains(rec, "dir: /var/lib/rampart/bastion/recordings") {
		t.Errorf("recorded-targets.yaml does not keep recordings in /var/lib/rampart/bastion/recordings")
	}

	// Ports: distinct across every daemon, and what the README's table,
	// the demo and the Prometheus scrape config say.
	ports := map[string]string{
		"bastion listen":             str(bastion, "listen"),
		"bastion metrics_listen":     str(bastion, "metrics_listen"),
		"blocklistd listen":          str(bld, "listen"),
		"blocklistd metrics_listen":  str(bld, "metrics_listen"),
		"agent metrics.listen":       str(agent, "metrics", "listen"),
		"pki listen":                 str(pki, "listen"),
		"pki metrics":                str(pki, "metrics"),
		"pki renew --daemon metrics": "127.0.0.1:9474",
	}
	byPort := map[string]string{}
	prom := readText(t, "prometheus/prometheus.yml")
	demo := ""
	for _, f := range []string{"10-pki.sh", "20-blocklistd.sh", "25-agent.sh", "30-bastion.sh"} {
		demo += readText(t, filepath.Join("demo", f))
	}
	for what, addr := range ports {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: %q: %v", what, addr, err)
			continue
		}
		if other, dup := byPort[port]; dup {
			t.Errorf("%s and %s both use port %s", what, other, port)
		}
		byPort[port] = what
		if !strings.Contains(readme, "`"+addr+"`") && !strings.Contains(readme, "`:"+port+"`") {
			t.Errorf("examples/README.md's port table lacks %s (%s)", what, addr)
		}
		if !strings.Contains(demo, ":-"+port+"}") && !strings.Contains(demo, ":"+port) {
			t.Errorf("the demo does not default %s to port %s", what, port)
		}
		if strings.Contains(what, "metrics") && !strings.Contains(what, "--daemon") && !strings.Contains(prom, ":"+port+"\"") {
			t.Errorf("prometheus.yml scrapes no target on %s's port %s", what, port)
		}
	}
}

// materialize puts the files an example config names (certificates,
// secrets, directories) under root, rewriting the config's absolute
// paths into root, and returns the rewritten config's path.
func materialize(t *testing.T, bin, root, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir(), rel))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, p := range []string{"/etc/rampart/", "/var/lib/rampart/", "/var/log/rampart/", "/var/lib/prometheus/"} {
		s = strings.ReplaceAll(s, p, root+p)
	}
	// Certificates as pki bootstrap lays them out, from a throwaway CA.
	ca := filepath.Join(root, "devcerts")
	if _, err := os.Stat(ca); err != nil {
		if out, err := exec.Command(filepath.Join(bin, "blocklistd"), "dev-certs", "--out", ca).CombinedOutput(); err != nil {
			t.Fatalf("blocklistd dev-certs: %v\n%s", err, out)
		}
		for dir, name := range map[string]string{"blocklistd": "blocklistd", "blocklist-agent": "agent", "admin": "admin", "bastion": "reporter"} {
			d := filepath.Join(root, "etc/rampart/tls", dir)
			os.MkdirAll(d, 0o755)
			for dst, src := range map[string]string{"cert.pem": name + ".pem", "key.pem": name + "-key.pem", "root.pem": "ca.pem"} {
				b, err := os.ReadFile(filepath.Join(ca, src))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(d, dst), b, 0o600)
			}
		}
		for _, d := range []string{"etc/rampart/bastion/users.d", "etc/rampart/acme/hooks", "var/lib/rampart", "var/log/rampart/bastion", "var/lib/prometheus/node-exporter"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		for _, f := range []string{"etc/rampart/acme/ovh-application-secret", "etc/rampart/acme/ovh-consumer-key", "etc/rampart/acme/zerossl-hmac"} {
			os.WriteFile(filepath.Join(root, f), []byte("example-secret\n"), 0o600)
		}
		for _, f := range []string{"etc/rampart/acme/hooks/nginx-reload.sh", "etc/rampart/acme/hooks/haproxy-reload.sh"} {
			os.WriteFile(filepath.Join(root, f), []byte("#!/bin/sh\n"), 0o755)
		}
	}
	out := filepath.Join(root, "etc/rampart", filepath.Base(rel))
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExampleConfigsCheck loads every example config with its binary's
// --check, as the units' ExecStartPre= does, after putting the files it
// names in place under a scratch root.
func TestExampleConfigsCheck(t *testing.T) {
	bin := buildAll(t)
	root := t.TempDir()
	cases := []struct {
		config string
		args   []string
	}{
		{"bastion/bastion.yaml", []string{"bastion", "serve", "--check", "--config"}},
		{"bastion/recorded-targets.yaml", []string{"bastion", "serve", "--check", "--config"}},
		{"blocklist/blocklistd.yaml", []string{"blocklistd", "serve", "--check", "--config"}},
		{"blocklist/agent.yaml", []string{"blocklist-agent", "run", "--check", "--config"}},
		{"acme/acme.yaml", []string{"acme-renew", "run", "--check", "--config"}},
	}
	for _, c := range cases {
		cfg := materialize(t, bin, root, c.config)
		cmd := exec.Command(filepath.Join(bin, c.args[0]), append(c.args[1:], cfg)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s (examples/%s): %v\n%s", c.args[0], strings.Join(c.args[1:], " "), c.config, err, out)
		} else {
			t.Logf("examples/%s: %s", c.config, strings.TrimSpace(string(out)))
		}
	}
	// pki.yaml names the files `pki init` writes beside it.
	dir := filepath.Join(root, "etc/rampart/pki")
	if out, err := exec.Command(filepath.Join(bin, "pki"), "init", "--dir", dir, "--name", "Example", "--dns", "ca.internal").CombinedOutput(); err != nil {
		t.Fatalf("pki init: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(examplesDir(), "pki/pki.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pki.yaml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(bin, "pki"), "serve", "--check", "--config", filepath.Join(dir, "pki.yaml")).CombinedOutput(); err != nil {
		t.Errorf("pki serve --check (examples/pki/pki.yaml in a pki init directory): %v\n%s", err, out)
	}
}
