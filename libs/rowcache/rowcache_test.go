package rowcache

import (
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	type step struct {
		do   func(c *Cache[string])
		id   string
		want string // "" = miss
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"fill then get", []step{{func(c *Cache[string]) { c.Fill("a", "A", c.Ticket()) }, "a", "A"}}},
		{"miss", []step{{func(*Cache[string]) {}, "a", ""}}},
		{"invalidate drops", []step{{func(c *Cache[string]) { c.Fill("a", "A", c.Ticket()); c.Invalidate("a") }, "a", ""}}},
		{"a read that raced a write cannot fill the old row", []step{{func(c *Cache[string]) {
			tk := c.Ticket()  // read starts
			c.Invalidate("a") // write commits
			c.Fill("a", "old", tk)
		}, "a", ""}}},
		{"a read after the write fills", []step{{func(c *Cache[string]) {
			c.Invalidate("a")
			c.Fill("a", "new", c.Ticket())
		}, "a", "new"}}},
		{"other ids' writes do not block a fill", []step{{func(c *Cache[string]) {
			tk := c.Ticket()
			c.Invalidate("b")
			c.Fill("a", "A", tk)
		}, "a", "A"}}},
		{"too old", []step{{func(c *Cache[string]) { c.Fill("a", "A", c.Ticket()); now = now.Add(time.Minute) }, "a", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New[string](Options{MaxEntries: 10, MaxAge: 30 * time.Second, Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				s.do(c)
				got, ok := c.Get(s.id)
				if (s.want == "") == ok || got != s.want {
					t.Fatalf("step %d: Get(%s) = %q, %v; want %q", i, s.id, got, ok, s.want)
				}
			}
		})
	}
}

func TestBoundedAndDroppedTombstones(t *testing.T) {
	c, err := New[int](Options{MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		c.Fill(string(rune('a'+i%26))+string(rune('a'+i/26)), i, c.Ticket())
	}
	if c.Len() > 3 {
		t.Fatalf("%d entries, bound 3", c.Len())
	}
	// A read starts, its id's write commits, then the tombstone is pushed out by other ids:
	// the old read still cannot fill.
	tk := c.Ticket()
	c.Invalidate("x")
	for _, id := range []string{"p", "q", "r", "s"} {
		c.Invalidate(id)
	}
	c.Fill("x", 1, tk)
	if _, ok := c.Get("x"); ok {
		t.Fatal("a read older than a dropped tombstone filled its row")
	}
	c.Fill("x", 2, c.Ticket())
	if v, ok := c.Get("x"); !ok || v != 2 {
		t.Fatalf("a fresh read did not fill: %d %v", v, ok)
	}
	if _, err := New[int](Options{MaxEntries: -1}); err == nil {
		t.Fatal("negative size accepted")
	}
}
