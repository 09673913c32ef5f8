package controller

import (
	"context"
	"errors"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// indexerInformer is an informer that only has a store.
type indexerInformer struct {
	cache.Informer
	idx toolscache.Indexer
}

func (i indexerInformer) GetIndexer() toolscache.Indexer { return i.idx }

// oneInformerCache hands out one informer, or err while it is set.
type oneInformerCache struct {
	cache.Cache
	inf cache.Informer
	err error
}

func (c *oneInformerCache) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	return c.inf, c.err
}

func TestUserStore(t *testing.T) {
	idx := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	user := func(ns, name, group string) *v1alpha1.UserPreference {
		u := &v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"group": group}}}
		if err := idx.Add(u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	carol := user("a", "carol", "fan")
	user("a", "alice", "fan")
	user("a", "bob", "other")
	user("b", "bert", "fan")
	c := &oneInformerCache{inf: indexerInformer{idx: idx}, err: errors.New("informer not synced")}
	s := &userStore{cache: c}
	ctx := context.Background()

	if _, err := s.get(ctx, "a", "carol"); err == nil {
		t.Fatal("get: no error while the informer cannot be had")
	}
	c.err = nil // the error is not kept
	got, err := s.get(ctx, "a", "carol")
	if err != nil || got != carol {
		t.Fatalf("get(a/carol) = %p, %v; want the store's own object %p", got, err, carol)
	}
	if got, err := s.get(ctx, "b", "carol"); err != nil || got != nil {
		t.Fatalf("get(b/carol) = %v, %v; want nil, nil", got, err)
	}
	selected, err := s.selectIn(ctx, "a", labels.SelectorFromSet(labels.Set{"group": "fan"}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range selected {
		names = append(names, u.Name)
	}
	if want := []string{"alice", "carol"}; !slices.Equal(names, want) {
		t.Fatalf("selectIn(a, group=fan) = %v, want %v (namespace a only, by name)", names, want)
	}
}
