// Command spacecast runs Spacecast in dev mode (`spacecast dev`) and talks to its API.
package main

import (
	"os"

	"github.com/spacecast/spacecast/cmd/spacecast/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
