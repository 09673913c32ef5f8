package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// userStore reads UserPreferences straight from the informer's store,
// without the copy the cached client makes of each: a fan-out reads
// thousands (a selector's whole namespace, then every child's recipients
// one by one), and planning, policy and rendering only read them. What it
// returns is the cache's own object: never change it.
type userStore struct {
	cache cache.Cache

	mu      sync.Mutex
	indexer toolscache.Indexer
}

// store is the UserPreference informer's indexer, found on first use (an
// error, such as a reconcile's context ending while the informer syncs, is
// not kept: the next call tries again).
func (s *userStore) store(ctx context.Context) (toolscache.Indexer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.indexer != nil {
		return s.indexer, nil
	}
	inf, err := s.cache.GetInformer(ctx, &v1alpha1.UserPreference{})
	if err != nil {
		return nil, err
	}
	ii, ok := inf.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return nil, fmt.Errorf("the UserPreference informer (%T) has no indexer", inf)
	}
	s.indexer = ii.GetIndexer()
	return s.indexer, nil
}

// get returns namespace/name's UserPreference, or nil when the cache has none.
func (s *userStore) get(ctx context.Context, namespace, name string) (*v1alpha1.UserPreference, error) {
	idx, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	o, ok, err := idx.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, err
	}
	return o.(*v1alpha1.UserPreference), nil
}

// selectIn returns namespace's UserPreferences that sel matches, by name.
func (s *userStore) selectIn(ctx context.Context, namespace string, sel labels.Selector) ([]*v1alpha1.UserPreference, error) {
	idx, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := idx.ByIndex(toolscache.NamespaceIndex, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]*v1alpha1.UserPreference, 0, len(objs))
	for _, o := range objs {
		if u := o.(*v1alpha1.UserPreference); sel.Matches(labels.Set(u.Labels)) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.UserPreference) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
