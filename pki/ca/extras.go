package ca

import "time"

// setExtraDefaults fills in the sections step-ca users expect beyond
// issuance: the CRL, the ACME and SSHPOP provisioners.
func (c *Config) setExtraDefaults() error {
	if err := c.CRL.setDefaults(); err != nil {
		return err
	}
	if err := c.ACME.setDefaults(time.Duration(c.Leaf.Default)); err != nil {
		return err
	}
	c.SSHPOP.setDefaults(c.SSH.Enabled)
	return nil
}
