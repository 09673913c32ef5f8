// Command kubectl-herald is the Herald CLI; on the PATH it also runs as
// `kubectl herald`. See docs/ci.md.
package main

import (
	"os"

	"github.com/herald-dev/herald/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
