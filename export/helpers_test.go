package export

import (
	"encoding/pem"
	"net/http"
)

type (
	httpHandler    = http.Handler
	handlerFunc    = http.HandlerFunc
	responseWriter = http.ResponseWriter
	request        = http.Request
)

func http500(w http.ResponseWriter) { http.Error(w, "internal error", http.StatusInternalServerError) }

func certPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
