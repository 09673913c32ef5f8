package dashboard

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// The checked-in JSON (and the chart's copy) is what this package builds:
// run `make chart-files` after changing a panel.
func TestCheckedInJSONIsCurrent(t *testing.T) {
	want, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config/grafana/herald.json", "charts/herald/files/herald.json"} {
		got, err := os.ReadFile(filepath.Join(root(), f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make chart-files", f)
		}
	}
}

// Every panel says what it shows, queries something, and lands in the JSON
// Grafana reads with its queries intact.
func TestPanels(t *testing.T) {
	b, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type, Title, Description string
			Targets                  []struct{ Expr string }
		} `json:"panels"`
		Templating struct {
			List []struct{ Name string } `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != UID {
		t.Errorf("uid %q, want %q", d.UID, UID)
	}
	want := map[string][]string{}
	for _, r := range Rows {
		for _, p := range r.Panels {
			if p.Description == "" || len(p.Queries) == 0 {
				t.Errorf("panel %q lacks a description or queries", p.Title)
			}
			for _, q := range p.Queries {
				want[p.Title] = append(want[p.Title], q.Expr)
			}
		}
	}
	got := map[string][]string{}
	rows := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			rows++
			continue
		}
		for _, tg := range p.Targets {
			got[p.Title] = append(got[p.Title], tg.Expr)
		}
	}
	if rows != len(Rows) || len(got) != len(want) {
		t.Fatalf("JSON has %d rows and %d panels, want %d and %d", rows, len(got), len(Rows), len(want))
	}
	for title, exprs := range want {
		if len(got[title]) != len(exprs) {
			t.Errorf("panel %q: %d queries in JSON, want %d", title, len(got[title]), len(exprs))
			continue
		}
		for i := range exprs {
			if got[title][i] != exprs[i] {
				t.Errorf("panel %q query %d = %q, want %q", title, i, got[title][i], exprs[i])
			}
		}
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["job"] {
		t.Errorf("variables %v, want datasource and job", vars)
	}
}

// docs/install.md describes every panel (no Grafana here to look at).
func TestPanelsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root(), "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Rows {
		for _, p := range r.Panels {
			if !bytes.Contains(doc, []byte("| "+p.Title+" |")) {
				t.Errorf("docs/install.md does not describe panel %q", p.Title)
			}
		}
	}
}
