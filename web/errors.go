package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// apiError is an error with the HTTP status and the JSON body a client gets
// for it. Handlers return it; handleError writes it.
type apiError struct {
	Status     int
	Message    string // for the client
	Parameter  string // the query or path parameter at fault, if one is
	RetryAfter int    // seconds, for 429 and 503
	Cause      error  // for the log, never for the client
}

func (e *apiError) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *apiError) Unwrap() error { return e.Cause }

// errorBody is the JSON of every error response.
type errorBody struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

// badParam is a 400 naming the parameter at fault.
func badParam(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...), Parameter: param}
}

// storeError turns an error from the Store or LiveProfiler into an API
// error: a bad selector or unknown label is the client's (400 naming
// selectorParam or labelParam), a deadline is a 503, anything else a 500.
func storeError(err error, selectorParam, labelParam string) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrBadSelector):
		return &apiError{Status: http.StatusBadRequest, Message: selectorParam + ": " + err.Error(), Parameter: selectorParam}
	case errors.Is(err, ErrUnknownLabel) && labelParam != "":
		return &apiError{Status: http.StatusBadRequest, Message: labelParam + ": " + err.Error(), Parameter: labelParam}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusServiceUnavailable, Message: "the query took longer than the server's time limit; try a shorter range or a narrower query", RetryAfter: 1, Cause: err}
	case errors.Is(err, context.Canceled):
		// The client went away; there is no one to answer, but log it as such.
		return &apiError{Status: 499, Message: "request canceled", Cause: err}
	default:
		return &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: err}
	}
}

// handleError is the echo HTTPErrorHandler: it writes every error as JSON and
// logs server-side failures once, here at the edge.
func (s *Server) handleError(err error, c echo.Context) {
	ae := toAPIError(err)
	req := c.Request()
	// Server-side failures are errors; the client's mistakes, 429s and
	// clients that went away (499) are routine.
	if ae.Status >= 500 {
		s.log.LogAttrs(req.Context(), slog.LevelError, "http request failed",
			slog.String("method", req.Method), slog.String("route", routeOf(c)),
			slog.Int("status", ae.Status), slog.String("error", ae.Error()))
	} else {
		s.log.LogAttrs(req.Context(), slog.LevelDebug, "http request rejected",
			slog.String("method", req.Method), slog.String("route", routeOf(c)),
			slog.Int("status", ae.Status), slog.String("error", ae.Message))
	}
	if c.Response().Committed {
		return
	}
	h := c.Response().Header()
	if ae.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	if ae.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="ember"`)
	}
	if req.Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	_ = c.JSON(ae.Status, errorBody{Error: ae.Message, Parameter: ae.Parameter})
}

// toAPIError maps anything a handler or echo returns to an apiError.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && m != "" {
			msg = m
		}
		return &apiError{Status: he.Code, Message: msg, Cause: he.Internal}
	}
	return &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: err}
}
