// Command pipe runs machine-learning pipelines written as TOML DAGs of stages.
//
// See the README for the commands and their exit codes.
package main

import (
	"os"

	"github.com/pipe-ml/pipe/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
