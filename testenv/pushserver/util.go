package pushserver

import (
	"bytes"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// readBody reads at most limit bytes of r's body; more is an error.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errClientGone, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// errClientGone is a body that stopped arriving: the client went away
// (a SIGKILLed notifier, a cancelled request). It says nothing about the
// request's form, so it is not recorded as a rejection.
var errClientGone = errors.New("the client went away before the body was read")

// strictJSON decodes one JSON value into v, refusing unknown fields,
// mistyped values and trailing data.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// elliptic256 is the P-256 curve.
func elliptic256() elliptic.Curve { return elliptic.P256() }
