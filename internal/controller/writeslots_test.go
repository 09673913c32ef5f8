package controller

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestWriteSlots(t *testing.T) {
	var woken []string
	s := newWriteSlots(2, func(k types.NamespacedName) { woken = append(woken, k.Name) })
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }
	steps := []struct {
		name  string
		do    func() bool
		want  bool
		woken []string
	}{
		{"first slot", func() bool { return s.take(key("a")) }, true, nil},
		{"second slot", func() bool { return s.take(key("b")) }, true, nil},
		{"none left: c waits", func() bool { return s.take(key("c")) }, false, nil},
		{"d waits", func() bool { return s.take(key("d")) }, false, nil},
		{"c again: waits once", func() bool { return s.take(key("c")) }, false, nil},
		{"a done: c, the longest waiting, is woken", func() bool { s.release(); return true }, true, []string{"c"}},
		{"c takes the freed slot", func() bool { return s.take(key("c")) }, true, []string{"c"}},
		{"b done: d woken", func() bool { s.release(); return true }, true, []string{"c", "d"}},
		{"nobody waits: a release wakes nobody", func() bool { s.release(); return true }, true, []string{"c", "d"}},
		{"two free again", func() bool { return s.take(key("x")) && s.take(key("y")) }, true, []string{"c", "d"}},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Fatalf("%s: %v, want %v", st.name, got, st.want)
		}
		if !reflect.DeepEqual(woken, st.woken) {
			t.Fatalf("%s: woken %v, want %v", st.name, woken, st.woken)
		}
	}
}
