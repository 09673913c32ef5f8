// Command dashboard writes Herald's Grafana dashboard (internal/dashboard) as JSON.
package main

import (
	"flag"
	"log"
	"os"

	"github.com/herald-dev/herald/internal/dashboard"
)

func main() {
	out := flag.String("out", "config/grafana/herald.json", "file to write")
	flag.Parse()
	b, err := dashboard.JSON()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		log.Fatal(err)
	}
}
