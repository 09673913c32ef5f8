package render

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func TestCache(t *testing.T) {
	spec := func(text string) *v1alpha1.TemplateSpec {
		return &v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: text}}}
	}
	c := NewCache(2)
	a1, err := c.Get(Key{"a", 1}, spec("one"))
	if err != nil {
		t.Fatal(err)
	}
	// Same key: the cached entry, whatever spec is passed.
	if again, _ := c.Get(Key{"a", 1}, spec("ignored")); again != a1 {
		t.Fatal("cache miss for the same key")
	}
	// A new generation is a new entry.
	a2, _ := c.Get(Key{"a", 2}, spec("two"))
	if a2 == a1 {
		t.Fatal("new generation served from cache")
	}
	msg, _ := a2.Render(v1alpha1.ChannelSMS, &Input{})
	if msg.SMS.Text != "two" {
		t.Fatalf("got %q", msg.SMS.Text)
	}
	// Parse errors are cached with their key.
	_, err1 := c.Get(Key{"b", 1}, spec("{{"))
	_, err2 := c.Get(Key{"b", 1}, spec("fine"))
	var pe ParseErrors
	if !errors.As(err1, &pe) || err1.Error() != err2.Error() {
		t.Fatalf("errors not cached: %v / %v", err1, err2)
	}
	// Bounded: {a,1} was least recently used and is gone.
	if c.Len() != 2 {
		t.Fatalf("len %d", c.Len())
	}
	if got, _ := c.Get(Key{"a", 1}, spec("recompiled")); got == a1 {
		t.Fatal("evicted entry still served")
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				k := Key{"t", int64(i % 12)}
				comp, err := c.Get(k, &v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: fmt.Sprintf("gen %d {{ .Params.g }}", k.Generation)}}})
				if err != nil {
					t.Error(err)
					return
				}
				msg, err := comp.Render(v1alpha1.ChannelSMS, &Input{Params: Params{"g": g}})
				if err != nil || msg.SMS.Text != fmt.Sprintf("gen %d %d", k.Generation, g) {
					t.Errorf("got %v, %v", msg, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 8 {
		t.Fatalf("len %d", c.Len())
	}
}
