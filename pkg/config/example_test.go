package config_test

import (
	"fmt"

	"github.com/rampart-sec/rampart/pkg/config"
)

func ExampleDecode() {
	type Agent struct {
		Server string          `yaml:"server"`
		Resync config.Duration `yaml:"resync"`
	}
	var a Agent
	err := config.Decode("agent.yaml", []byte("server: https://bl:8443\nresynk: 1h\n"), &a)
	fmt.Println(err)
	// Output: config: agent.yaml:2: unknown key "resynk" (did you mean "resync"?)
}
