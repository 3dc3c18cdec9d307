package importserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// errWrongCredentials is BearerSecret's refusal of a wrong token (403).
var errWrongCredentials = errors.New("importserver: wrong credentials")

// BearerSecret returns an Authorizer that admits requests carrying
// "Authorization: Bearer <secret>". The token is compared in constant time
// (both sides are hashed first, so their lengths leak nothing either). A
// missing or malformed header is ErrUnauthenticated (401), a wrong token
// 403. It panics on an empty secret, which would admit nobody by mistake.
func BearerSecret(secret string) Authorizer {
	if secret == "" {
		panic("importserver.BearerSecret: empty secret")
	}
	want := sha256.Sum256([]byte(secret))
	return func(r *http.Request) error {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			return fmt.Errorf("%w: no Authorization header", ErrUnauthenticated)
		}
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return fmt.Errorf("%w: credentials must be a bearer token", ErrUnauthenticated)
		}
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return errWrongCredentials
		}
		return nil
	}
}
