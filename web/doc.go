// Package web is the operator's console: HTML pages served by the edge on
// its API listener at /, beside the API under /v1.
//
// The console is a client of the edge's own API. Every page calls the API
// in process (client.NewInProcess) with the signed-in operator's admin
// token, so that it shows exactly what the CLI shows, from whichever edge
// of a cluster serves it, and is refused exactly what the CLI is refused.
//
// Security. An operator signs in with the admin token; the console keeps
// it server-side and hands the browser a random session id in a cookie
// (__Host- prefixed: Secure, Path=/, no Domain; HttpOnly; SameSite=Strict).
// Every change (any method but GET and HEAD) must carry the session's CSRF
// token, in a form field or the X-CSRF-Token header that htmx sends, and must
// not come from another site (Sec-Fetch-Site, Origin). Pages are rendered by
// html/template, scripts and styles come only from the binary (embed), and
// the Content-Security-Policy allows nothing else: no inline script or style,
// no fetch from another origin, no framing.
//
// Sessions live in the memory of the edge that served the sign-in: in a
// cluster, each edge signs its operators in on its own, and a restart signs
// everyone out.
package web
