package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// csrf protects the action forms with a token bound to a cookie: the
// cookie holds a random session id, the form a MAC of that id under a key
// only the server knows. A page of another origin can make the browser
// send the cookie (SameSite=Strict already stops that in current
// browsers) but can neither read it nor compute the token, so a forged
// POST lacks a matching token. http.CrossOriginProtection is checked
// first, for browsers that send Sec-Fetch-Site or Origin.
type csrf struct {
	key  []byte
	path string // the cookie's Path: the dashboard's prefix
}

const (
	csrfCookie = "ferry_dashboard_csrf"
	csrfField  = "csrf"
	// csrfContext separates these MACs from anything else the host might
	// sign with the same key.
	csrfContext = "ferry dashboard csrf v1\x00"
	sessionLen  = 16
)

func newCSRF(key []byte, path string) (csrf, error) {
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return csrf{}, err
		}
	}
	return csrf{key: append([]byte(nil), key...), path: path}, nil
}

// session returns the request's session id, or "" when its cookie is
// missing or malformed.
func (c csrf) session(r *http.Request) string {
	ck, err := r.Cookie(csrfCookie)
	if err != nil {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(raw) != sessionLen {
		return ""
	}
	return ck.Value
}

// token returns the token for the request's session, starting a session
// (setting its cookie) when the request has none.
func (c csrf) token(w http.ResponseWriter, r *http.Request) string {
	id := c.session(r)
	if id == "" {
		raw := make([]byte, sessionLen)
		_, _ = rand.Read(raw) // crypto/rand.Read never fails
		id = base64.RawURLEncoding.EncodeToString(raw)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: id, Path: c.path, HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
	return c.mac(id)
}

func (c csrf) mac(id string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(csrfContext))
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// valid reports whether token is the one of the request's session.
func (c csrf) valid(r *http.Request, token string) bool {
	id := c.session(r)
	if id == "" || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.mac(id)), []byte(token)) == 1
}
