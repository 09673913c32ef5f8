// Package image checks the OCI image `make image` writes to bin/image: both
// architectures, a nonroot user, the entrypoint and labels the Dockerfile's
// image has, a static manager with time zones embedded.
package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/testenv"
)

var layoutDir = filepath.Join(testenv.Root(), "bin", "image")

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type index struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User       string
		Entrypoint []string
		WorkingDir string
		Labels     map[string]string
	} `json:"config"`
}

func blob(t *testing.T, digest string) string {
	t.Helper()
	algo, hex, _ := strings.Cut(digest, ":")
	return filepath.Join(layoutDir, "blobs", algo, hex)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make image`; make test does)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestImage(t *testing.T) {
	var top index
	readJSON(t, filepath.Join(layoutDir, "index.json"), &top)
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("layout index %+v, want one OCI image index", top)
	}
	if ref := top.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; !strings.Contains(ref, "herald") {
		t.Errorf("image ref name %q", ref)
	}
	var idx index
	readJSON(t, blob(t, top.Manifests[0].Digest), &idx)
	user, entrypoint := dockerfile(t)
	var platforms []string
	var total int64
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		platforms = append(platforms, p)
		var m manifest
		readJSON(t, blob(t, d.Digest), &m)
		var cfg imageConfig
		readJSON(t, blob(t, m.Config.Digest), &cfg)
		if cfg.OS+"/"+cfg.Architecture != p {
			t.Errorf("%s: config says %s/%s", p, cfg.OS, cfg.Architecture)
		}
		if cfg.Config.User != user || !slices.Equal(cfg.Config.Entrypoint, entrypoint) {
			t.Errorf("%s: user %q entrypoint %v, want the Dockerfile's %q %v", p, cfg.Config.User, cfg.Config.Entrypoint, user, entrypoint)
		}
		for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.title"} {
			if cfg.Config.Labels[l] == "" {
				t.Errorf("%s: label %s missing", p, l)
			}
		}
		files := map[string]*tar.Header{}
		var passwd string
		manager := filepath.Join(t.TempDir(), "manager")
		for _, l := range m.Layers {
			total += l.Size
			eachFile(t, blob(t, l.Digest), func(h *tar.Header, r io.Reader) {
				files[h.Name] = h
				switch h.Name {
				case "etc/passwd":
					b, _ := io.ReadAll(r)
					passwd = string(b)
				case "manager":
					f, err := os.OpenFile(manager, os.O_CREATE|os.O_WRONLY, 0o755)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := io.Copy(f, r); err != nil {
						t.Fatal(err)
					}
					f.Close()
				}
			})
		}
		if h := files["manager"]; h == nil || h.Mode&0o111 == 0 {
			t.Fatalf("%s: no executable /manager", p)
		}
		if h := files["etc/ssl/certs/ca-certificates.crt"]; h == nil || h.Size == 0 {
			t.Errorf("%s: no CA certificates", p)
		}
		if !strings.Contains(passwd, "nonroot:x:65532:65532:") || !strings.HasPrefix(user, "65532") {
			t.Errorf("%s: user %q, passwd %q: want nonroot 65532", p, user, passwd)
		}
		checkBinary(t, p, manager)
		if p == runtime.GOOS+"/"+runtime.GOARCH {
			// The entrypoint runs here as it would in the image: static,
			// no loader or libc needed.
			out, err := exec.Command(manager, "--help").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "-audit-log") {
				t.Errorf("%s: /manager --help: %v\n%s", p, err, out)
			}
		}
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v, want linux/amd64 and linux/arm64", platforms)
	}
	t.Logf("image: %d platforms, %.1f MiB of compressed layers in all", len(platforms), float64(total)/(1<<20))
}

// checkBinary reads the manager's build settings: static, for the
// platform, with the time zone database embedded (quiet hours need zones
// and the image has no /usr/share/zoneinfo).
func checkBinary(t *testing.T, platform, path string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", path).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	settings := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "build" {
			k, v, _ := strings.Cut(f[1], "=")
			settings[k] = v
		}
	}
	os, arch, _ := strings.Cut(platform, "/")
	if settings["CGO_ENABLED"] != "0" || settings["GOOS"] != os || settings["GOARCH"] != arch || !strings.Contains(settings["-tags"], "timetzdata") {
		t.Errorf("%s: manager build settings %v, want CGO_ENABLED=0 GOOS=%s GOARCH=%s -tags timetzdata", platform, settings, os, arch)
	}
}

func eachFile(t *testing.T, path string, f func(*tar.Header, io.Reader)) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(bufio.NewReader(fh))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		f(h, tr)
	}
}

// dockerfile returns the Dockerfile's USER and ENTRYPOINT: make image and
// the Dockerfile build the same image.
func dockerfile(t *testing.T) (string, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindSubmatch(b)
	ep := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])`).FindSubmatch(b)
	if user == nil || ep == nil {
		t.Fatal("Dockerfile has no USER or ENTRYPOINT")
	}
	var entry []string
	if err := json.Unmarshal(ep[1], &entry); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "-tags timetzdata") {
		t.Error("the Dockerfile's build lacks -tags timetzdata")
	}
	return string(user[1]), entry
}
