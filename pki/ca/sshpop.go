package ca

// SSHPOPConfig is pki.yaml's sshpop section: step-ca's SSHPOP
// provisioner, with which a host renews its SSH host certificate by
// proving it holds the certificate's key (`step ssh renew`, `pki renew
// --ssh-host-key`). On by default when ssh is enabled.
type SSHPOPConfig struct {
	Enabled *bool  `yaml:"enabled"`
	Name    string `yaml:"name"` // default "sshpop"
}

// On reports whether the SSHPOP provisioner is served.
func (s *SSHPOPConfig) On(sshEnabled bool) bool {
	return sshEnabled && (s.Enabled == nil || *s.Enabled)
}

func (s *SSHPOPConfig) setDefaults(sshEnabled bool) {
	if s.Name == "" {
		s.Name = "sshpop"
	}
	if s.Enabled == nil {
		on := sshEnabled
		s.Enabled = &on
	}
}
