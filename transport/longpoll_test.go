package transport

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLongPollBody(t *testing.T) {
	frames, err := ParseLongPollBody("application/x-ndjson; charset=utf-8", []byte("\r\n[1]\r\n\n  \naGkh\n[2]"))
	require.NoError(t, err)
	assert.Equal(t, []Frame{{Data: []byte("[1]")}, {Data: []byte("hi!"), Binary: true}, {Data: []byte("[2]")}}, frames)

	frames, err = ParseLongPollBody("application/json", []byte("[1]\n[2]"))
	require.NoError(t, err)
	assert.Equal(t, []Frame{{Data: []byte("[1]\n[2]")}}, frames, "not NDJSON: one frame")
	frames, err = ParseLongPollBody("", []byte("  "))
	require.NoError(t, err)
	assert.Empty(t, frames)

	lines := make([]string, 150)
	for i := range lines {
		lines[i] = "[" + strconv.Itoa(i) + "]"
	}
	frames, err = ParseLongPollBody("application/x-ndjson", []byte(strings.Join(lines, "\n")))
	require.NoError(t, err)
	require.Len(t, frames, MaxLongPollLines)
	assert.Equal(t, "[99]", string(frames[99].Data))

	frames, err = ParseLongPollBody("application/x-ndjson", []byte("[1]\n!!!\n[2]"))
	assert.ErrorIs(t, err, ErrBadLongPollLine)
	assert.Equal(t, []Frame{{Data: []byte("[1]")}}, frames, "frames before the bad line")
}

func TestLongPollDeliverAndPoll(t *testing.T) {
	l := NewLongPoll(LongPollOptions{MaxBuffered: 2})
	ctx := context.Background()

	// Deliver waits for the reader: with none, it times out.
	n, err := l.Deliver(ctx, []Frame{{Data: []byte("[1]")}}, 20*time.Millisecond)
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, ErrLongPollTimeout)

	read := make(chan string, 4)
	go func() {
		for {
			data, _, err := l.ReadFrame(ctx)
			if err != nil {
				close(read)
				return
			}
			read <- string(data)
		}
	}()
	n, err = l.Deliver(ctx, []Frame{{Data: []byte("[1]")}, {Data: []byte("[2]")}}, time.Second)
	assert.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, "[1]", <-read)
	assert.Equal(t, "[2]", <-read)

	// An empty window answers with no frames; a newer poll supersedes a held one.
	frames, err := l.Poll(ctx, 10*time.Millisecond)
	assert.NoError(t, err)
	assert.Empty(t, frames)
	first := make(chan error, 1)
	go func() { _, err := l.Poll(ctx, 5*time.Second); first <- err }()
	time.Sleep(20 * time.Millisecond)
	second := make(chan [][]byte, 1)
	go func() { f, _ := l.Poll(ctx, 5*time.Second); second <- f }()
	assert.ErrorIs(t, <-first, ErrPollSuperseded)
	require.NoError(t, l.WriteFrame(ctx, []byte("a"), false))
	require.NoError(t, l.WriteFrame(ctx, []byte{0}, true), "binary frames are dropped")
	assert.Equal(t, [][]byte{[]byte("a")}, <-second)

	// Overflow closes the session.
	require.NoError(t, l.WriteFrame(ctx, []byte("b"), false))
	require.NoError(t, l.WriteFrame(ctx, []byte("c"), false))
	assert.ErrorIs(t, l.WriteFrame(ctx, []byte("d"), false), ErrClosed)
	code, _ := l.CloseStatus()
	assert.Equal(t, StatusTryAgainLater, code)
	_, ok := <-read
	assert.False(t, ok, "the reader ends")
	frames, err = l.Poll(ctx, time.Second)
	assert.NoError(t, err, "what was buffered is still delivered")
	assert.Len(t, frames, 2)
	_, err = l.Poll(ctx, time.Second)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = l.Deliver(ctx, []Frame{{Data: []byte("[1]")}}, time.Second)
	assert.ErrorIs(t, err, ErrClosed)
}
