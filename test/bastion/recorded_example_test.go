package bastion_test

import (
	"path/filepath"
	"testing"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/test/testenv"
)

// The recorded-targets example loads as a bastion config.
func TestRecordedExampleConfig(t *testing.T) {
	p := filepath.Join(testenv.ModuleRoot(), "examples", "bastion", "recorded-targets.yaml")
	c, err := bastion.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Recording.Dir == "" || len(c.Targets) != 2 {
		t.Errorf("recording %+v, %d targets", c.Recording, len(c.Targets))
	}
}
