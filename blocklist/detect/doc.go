// Package detect finds abusive clients in this host's logs and reports them
// to blocklistd, the way fail2ban does but without touching the firewall
// itself: blocklistd decides, every agent enforces.
//
// A [Detector] joins three small pieces:
//
//   - a [Source] that yields log lines: [File] tails a file and survives
//     rotation and truncation; [Command] follows a program's output
//     (journalctl -f -o json for sshd under systemd);
//   - a [Matcher] that pulls the offending address out of one line:
//     [SSHD] for OpenSSH's messages (auth.log or syslog lines), [Journal]
//     around it for journald's JSON, [JSONFields] for JSON-lines audit
//     logs such as the bastion's, and [Regex] for access logs (presets for
//     nginx and HAProxy);
//   - a threshold: Count matches from one address within Window make a
//     report, after which the address is quiet for one Window.
//
// [Runner] drives detectors and sends their reports through a [Reporter]
// (a blocklistd client) from a bounded queue, so a slow or absent server
// never blocks reading the logs.
//
// Every line is untrusted input: matchers take the address from the part of
// the line the logging program wrote, never from text an attacker chose
// (an SSH user name, a request path), and every parser is fuzzed.
package detect
