package render

import (
	"container/list"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Key identifies one version of a template's content: a Template's (or, for
// inline content, a Notification's) uid and metadata.generation. Spec
// changes bump the generation, so a cached entry is never stale.
type Key struct {
	UID        types.UID
	Generation int64
}

// Cache holds compiled templates, least recently used evicted first. It is
// safe for concurrent use.
type Cache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front = most recent; values are *cacheEntry
	m   map[Key]*list.Element
}

type cacheEntry struct {
	key Key
	c   *Compiled
	err error
}

// DefaultCacheSize fits every Template of a large cluster plus the inline
// contents of the Notifications being planned.
const DefaultCacheSize = 1024

// NewCache returns a cache of at most size compiled templates (DefaultCacheSize if size <= 0).
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{max: size, ll: list.New(), m: make(map[Key]*list.Element, size)}
}

// Get returns the compiled spec for key, compiling it on a miss. Parse
// errors are cached too: the same generation always fails the same way.
// Two callers missing at once may both compile; the result is the same.
func (c *Cache) Get(key Key, spec *v1alpha1.TemplateSpec) (*Compiled, error) {
	c.mu.Lock()
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.c, e.err
	}
	c.mu.Unlock()

	compiled, err := Compile(spec)

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		return e.c, e.err
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, c: compiled, err: err})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
	return compiled, err
}

// Len returns the number of cached entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
