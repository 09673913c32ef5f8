// Command image assembles Herald's multi-arch OCI image without a Docker
// engine: for each platform, a base layer (CA certificates, a passwd and
// group with the nonroot user 65532, /tmp and the nonroot home: what the
// distroless static:nonroot base holds that the manager needs) and a layer
// with the static manager binary, which carries its own time zone data
// (-tags timetzdata) for quiet hours. It writes an OCI image layout, and
// pushes the index when -push names a reference. Layers are reproducible:
// fixed file times and order, so the same binaries give the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every file's time and the image's creation time.
var epoch = time.Unix(0, 0).UTC()

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
)

func main() {
	bins := flag.String("bins", "bin/image-build", "directory holding manager-linux-<arch> for each platform")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	out := flag.String("out", "bin/image", "OCI image layout to write (replaced)")
	ref := flag.String("ref", "herald-dev/herald:latest", "the image's name, recorded in the layout's index")
	version := flag.String("version", "dev", "org.opencontainers.image.version label")
	revision := flag.String("revision", "", "org.opencontainers.image.revision label")
	caFile := flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to install at /etc/ssl/certs/ca-certificates.crt")
	push := flag.Bool("push", false, "push the index to -ref as well (needs a reachable registry)")
	flag.Parse()

	ca, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatalf("CA certificates: %v", err)
	}
	base, err := layer([]entry{
		{name: "etc/", dir: true},
		{name: "etc/passwd", data: []byte(passwd)},
		{name: "etc/group", data: []byte(group)},
		{name: "etc/ssl/", dir: true},
		{name: "etc/ssl/certs/", dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", data: ca},
		{name: "home/", dir: true},
		{name: "home/nonroot/", dir: true, uid: 65532, mode: 0o700},
		{name: "tmp/", dir: true, mode: 0o1777},
	})
	if err != nil {
		log.Fatal(err)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "herald",
		"org.opencontainers.image.description": "Herald delivers notifications from Kubernetes custom resources.",
		"org.opencontainers.image.source":      "https://github.com/herald-dev/herald",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.version":     *version,
		"org.opencontainers.image.revision":    *revision,
	}
	var adds []mutate.IndexAddendum
	for _, p := range strings.Split(*platforms, ",") {
		os_, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok {
			log.Fatalf("platform %q is not os/arch", p)
		}
		bin, err := os.ReadFile(filepath.Join(*bins, fmt.Sprintf("manager-%s-%s", os_, arch)))
		if err != nil {
			log.Fatal(err)
		}
		app, err := layer([]entry{{name: "manager", data: bin, mode: 0o755}})
		if err != nil {
			log.Fatal(err)
		}
		img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base, app)
		if err != nil {
			log.Fatal(err)
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		cf, err := img.ConfigFile()
		if err != nil {
			log.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Created = os_, arch, v1.Time{Time: epoch}
		cf.Config.User = "65532:65532"
		cf.Config.Entrypoint = []string{"/manager"}
		cf.Config.WorkingDir = "/"
		cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
		cf.Config.Labels = labels
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			log.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os_, Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)

	if err := os.RemoveAll(*out); err != nil {
		log.Fatal(err)
	}
	lp, err := layout.Write(*out, empty.Index)
	if err != nil {
		log.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": *ref})); err != nil {
		log.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "digest"), []byte(d.String()+"\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %s (%s) to %s\n", *ref, d, *out)
	if *push {
		r, err := name.ParseReference(*ref)
		if err != nil {
			log.Fatal(err)
		}
		if err := remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("pushed %s@%s\n", r.Context().Name(), d)
	}
}

type entry struct {
	name string
	data []byte
	dir  bool
	mode int64
	uid  int
}

// layer is a tar layer of entries, in order, owned by root unless uid says
// otherwise, all at epoch.
func layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
