package client

import (
	"fmt"
	"net/url"
	"sync"
)

// apiList is the API addresses a client may use, the one to try first at
// the front: one edge, or every edge of a cluster.
type apiList struct {
	mu   sync.Mutex
	list []*url.URL
	cur  int
}

func newAPIList(first *url.URL) *apiList { return &apiList{list: []*url.URL{first}} }

func (l *apiList) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.list)
}

// current returns the address to use and its index, for failed.
func (l *apiList) current() (*url.URL, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.list[l.cur], l.cur
}

// failed moves on from address i, unless another request already did.
func (l *apiList) failed(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == i {
		l.cur = (i + 1) % len(l.list)
	}
}

// set replaces the alternatives with urls, keeping the address in use first.
func (l *apiList) set(urls []*url.URL) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.list[l.cur]
	list := []*url.URL{cur}
	for _, u := range urls {
		if *u != *cur {
			list = append(list, u)
		}
	}
	l.list, l.cur = list, 0
}

// parseAPI parses an API address an agent was given: an https URL.
func parseAPI(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("API address %q is not an https:// URL", s)
	}
	return u, nil
}

// SetAPIs sets the other edges' API addresses that this agent client may
// use when the one it uses cannot answer: the list an edge hands out in
// agent configurations. Addresses that are not https URLs are skipped.
func (c *Client) SetAPIs(apis []string) {
	var urls []*url.URL
	for _, s := range apis {
		if u, err := parseAPI(s); err == nil {
			urls = append(urls, u)
		}
	}
	if len(urls) > 0 {
		c.apis.set(urls)
	}
}
