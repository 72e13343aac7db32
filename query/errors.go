package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/parleyv1"
)

// Error codes are the names of parley.v1.ErrorCode without the ERROR_CODE_
// prefix, so HTTP clients and WebSocket clients switch on the same names.
var (
	codeUnauthenticated = codeName(parleyv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED)
	codeNotMember       = codeName(parleyv1.ErrorCode_ERROR_CODE_NOT_MEMBER)
	codeInvalidArgument = codeName(parleyv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	codeNotFound        = codeName(parleyv1.ErrorCode_ERROR_CODE_NOT_FOUND)
	codeUnavailable     = codeName(parleyv1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	codeInternal        = codeName(parleyv1.ErrorCode_ERROR_CODE_INTERNAL)
	codeUnsupported     = codeName(parleyv1.ErrorCode_ERROR_CODE_UNSUPPORTED)
	codeInvalidID       = codeName(parleyv1.ErrorCode_ERROR_CODE_INVALID_ID)
	codeInvalidCursor   = codeName(parleyv1.ErrorCode_ERROR_CODE_INVALID_CURSOR)
	codeUserBanned      = codeName(parleyv1.ErrorCode_ERROR_CODE_USER_BANNED)
	codeDeviceRevoked   = codeName(parleyv1.ErrorCode_ERROR_CODE_DEVICE_REVOKED)
	codeDeleted         = codeName(parleyv1.ErrorCode_ERROR_CODE_CONVERSATION_DELETED)
	codeRateLimited     = codeName(parleyv1.ErrorCode_ERROR_CODE_RATE_LIMITED)
)

func codeName(c parleyv1.ErrorCode) string {
	return strings.TrimPrefix(c.String(), "ERROR_CODE_")
}

// apiError is a response the client caused or should know about: it is sent
// as {"error": {"code", "message"}} with status.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func invalidArgument(msg string) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidArgument, msg}
}

// errNotMember is the same whether the conversation does not exist, the
// caller never was a member or was removed: existence is not revealed.
var errNotMember = &apiError{http.StatusForbidden, codeNotMember, "not a member of this conversation"}

// errDeleted answers a member (current or former) about a deleted
// conversation: nothing of it is served any more. A non-member is answered
// errNotMember, as for any conversation.
var errDeleted = &apiError{http.StatusNotFound, codeDeleted, "this conversation was deleted"}

// storeError is a failed Cassandra read: the client may retry (UNAVAILABLE).
type storeError struct {
	op  string
	err error
}

func (e *storeError) Error() string { return "query: cassandra " + e.op + ": " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail answers r with err, mapped to its status and code, and logs faults.
// A log line names the route pattern, never the request's path or query,
// which the client chose and may make as long as the server accepts.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var se *storeError
	var ie *schemas.IDError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &ie):
		ae = &apiError{http.StatusBadRequest, codeName(ie.Code), ie.Error()}
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		ae = &apiError{http.StatusServiceUnavailable, codeUnavailable, "request canceled"}
	case errors.As(err, &se), errors.Is(err, context.DeadlineExceeded):
		s.log.WarnContext(r.Context(), "cassandra read failed", "route", routeOf(r), "err", err)
		ae = &apiError{http.StatusServiceUnavailable, codeUnavailable, "the view store is unavailable; retry later"}
	default:
		s.log.ErrorContext(r.Context(), "request failed", "route", routeOf(r), "err", err)
		ae = &apiError{http.StatusInternalServerError, codeInternal, "internal error"}
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	}
	writeJSON(w, ae.status, errorBody{errorDetail{Code: ae.code, Message: ae.message}})
}

// routeOf names r's endpoint for a log line: its mux pattern, or the clipped
// path when no pattern matched.
func routeOf(r *http.Request) string {
	if r.Pattern != "" && r.Pattern != "/" {
		return r.Pattern
	}
	return schemas.Clip(r.URL.Path)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(errorBody{errorDetail{Code: codeInternal, Message: "encoding the response failed"}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	// Every answer is per user and changes as the log moves on.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
