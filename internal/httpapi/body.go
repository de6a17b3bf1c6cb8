package httpapi

import (
	"io"
	"net/http"
	"strings"
)

// drainBeyondLimit is how much of a refused body the server still reads.
const drainBeyondLimit = 1 << 20

// limitBody caps a route's request body at limit bytes (a read past it fails
// with *http.MaxBytesError, as with http.MaxBytesReader), and once the
// handler has answered, reads and discards what the client is still sending,
// up to 1 MiB past the limit, before the answer goes out.
//
// Why: a client sends its whole body before it reads the answer. A server
// that answers 413 (or 401) and closes the connection with the client's bytes
// still unread makes the kernel reset the connection, and the client sees a
// reset instead of the answer. Within 1 MiB past the limit, the client reads
// its 413; beyond, it is cut off. The server's read timeout bounds the time
// this takes.
func limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		b := &limitedBody{rc: r.Body, limit: limit}
		r.Body = b
		next.ServeHTTP(w, r)
		b.drain(r)
	})
}

// limitedBody is a request body read at most up to its limit.
type limitedBody struct {
	rc    io.ReadCloser
	limit int64
	n     int64 // bytes read so far
	eof   bool  // the body ended
	err   error // sticky: the limit was hit
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// One byte more than allowed tells a body at the limit from one beyond it.
	if rest := b.limit + 1 - b.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	if b.n > b.limit {
		n -= int(b.n - b.limit)
		b.err = &http.MaxBytesError{Limit: b.limit}
		return n, b.err
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// drain reads what is left of the body, up to drainBeyondLimit past the limit.
// A client that asked to be told before sending (Expect: 100-continue) and
// was answered without the body being read has sent nothing: there is nothing
// to drain, and reading would invite it to send.
func (b *limitedBody) drain(r *http.Request) {
	if b.eof || (b.n == 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue")) {
		return
	}
	_, _ = io.CopyN(io.Discard, b.rc, b.limit+drainBeyondLimit-b.n)
}
