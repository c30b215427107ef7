package wasi

import (
	"context"
	"math"
	"time"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// Subscription and event layouts (WASI preview1).
const (
	subSize   = 48
	eventSize = 32

	tagClock   = 0
	tagFdRead  = 1
	tagFdWrite = 2

	subclockAbstime = 1
	eventHangup     = 1
)

// ppoll is unix.Ppoll (tests count the waits through it).
var ppoll = unix.Ppoll

// cancelCheck bounds how long one host poll sleeps before checking whether
// the run was cancelled (the guest is never woken spuriously by it).
const cancelCheck = 250 * time.Millisecond

type sub struct {
	userdata uint64
	tag      uint8
	errno    Errno
	deadline time.Time // clock
	poller   fd.Poller // fd_read / fd_write
	// hint: the poller's host fd is only a hint (fd.HintPoller), so
	// PollFD is asked again when it wakes.
	hint bool
}

type pending struct {
	sub     int
	flags   uint16
	errno   Errno
	hasData bool
}

// pollOneoff is poll_oneoff: parse the subscriptions, then until one is
// ready sort them (scan) and wait for the host fds and the earliest clock
// (block), then write the events. A host fd that is only a hint of its
// descriptor's readiness (fd.HintPoller) makes an event only if the
// descriptor is ready when asked again; otherwise the wait goes on, to the
// same deadlines.
func (s *System) pollOneoff(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	in, out, n, resPtr := uint32(stk[0]), uint32(stk[1]), uint32(stk[2]), uint32(stk[3])
	if n == 0 || n > MaxSubscriptions {
		return EINVAL
	}
	mem := c.Memory()
	inB, outB, res := view(mem, in, n*subSize), view(mem, out, n*eventSize), view(mem, resPtr, 4)
	if inB == nil || outB == nil || res == nil {
		return EFAULT
	}
	return s.poll(ctx, inB, outB, res, int(n))
}

// poll is poll_oneoff on n subscriptions in inB, checked, writing the
// events into outB and their count into res.
func (s *System) poll(ctx context.Context, inB, outB, res []byte, n int) Errno {
	// Parse everything before writing anything: in and out may overlap.
	subs, errno := s.parseSubs(inB, n)
	if errno != ESUCCESS {
		return errno
	}
	// Scratch space is reused across calls (a wasip1 guest has one
	// thread, and Go's scheduler polls often).
	defer func() { s.ready, s.pfds, s.pindex = s.ready[:0], s.pfds[:0], s.pindex[:0] }()
	for {
		wait, ok := s.scan(subs)
		if !ok {
			// Only subscriptions that can never fire.
			return EINVAL
		}
		if len(s.pfds) > 0 || wait != 0 {
			if errno := s.block(ctx, subs, wait); errno != ESUCCESS {
				return errno
			}
			if len(s.ready) == 0 {
				// A clock may have fired, or a hint woke us for nothing:
				// the loop looks again.
				continue
			}
		}
		s.writeEvents(subs, outB)
		le.PutUint32(res, uint32(len(s.ready)))
		return ESUCCESS
	}
}

// parseSubs decodes the n subscriptions in inB into s.subs. A
// subscription that cannot be polled (bad clock, bad fd) carries its errno
// and is reported as an event; an unknown tag fails the whole call.
func (s *System) parseSubs(inB []byte, n int) ([]sub, Errno) {
	if cap(s.subs) < n {
		s.subs = make([]sub, n)
	}
	subs := s.subs[:n]
	clear(subs)
	now := time.Now()
	for i := range subs {
		b := inB[i*subSize : (i+1)*subSize]
		sb := &subs[i]
		sb.userdata = le.Uint64(b)
		sb.tag = b[8]
		switch sb.tag {
		case tagClock:
			sb.deadline, sb.errno = s.deadline(now, le.Uint32(b[16:]), le.Uint64(b[24:]), le.Uint16(b[40:]))
		case tagFdRead, tagFdWrite:
			e, errno := s.entry(uint64(le.Uint32(b[16:])))
			if errno != ESUCCESS {
				sb.errno = errno
				break
			}
			p, ok := e.File.(fd.Poller)
			if !ok {
				sb.errno = EBADF
				break
			}
			if _, file := e.File.(vfs.File); file {
				// Streams and sockets have fixed rights.
				if errno := need(e, fd.RightPollFdReadwrite); errno != ESUCCESS {
					sb.errno = errno
					break
				}
			}
			sb.poller = p
			if h, ok := p.(fd.HintPoller); ok {
				sb.hint = h.PollHint(sb.tag == tagFdWrite)
			}
		default:
			return nil, EINVAL
		}
	}
	return subs, ESUCCESS
}

// scan sorts the subscriptions as they stand now: those ready (or failed)
// into s.ready, the host fds to wait for into s.pfds (their subscriptions
// in s.pindex). wait is how long to wait: 0 with something ready, until
// the earliest clock, or -1 (no clock: for the fds alone). ok is false
// when no subscription can ever fire.
func (s *System) scan(subs []sub) (wait time.Duration, ok bool) {
	s.ready, s.pfds, s.pindex = s.ready[:0], s.pfds[:0], s.pindex[:0]
	now := time.Now()
	var earliest time.Time
	for i := range subs {
		sb := &subs[i]
		switch {
		case sb.errno != ESUCCESS:
			s.ready = append(s.ready, pending{sub: i, errno: sb.errno})
		case sb.tag == tagClock:
			if !now.Before(sb.deadline) {
				s.ready = append(s.ready, pending{sub: i})
			} else if earliest.IsZero() || sb.deadline.Before(earliest) {
				earliest = sb.deadline
			}
		default:
			hostfd, ok := sb.poller.PollFD(sb.tag == tagFdWrite)
			if ok {
				s.ready = append(s.ready, pending{sub: i, hasData: true})
			} else if hostfd >= 0 {
				ev := int16(unix.POLLIN)
				if sb.tag == tagFdWrite {
					ev = unix.POLLOUT
				}
				s.pfds = append(s.pfds, unix.PollFd{Fd: int32(hostfd), Events: ev})
				s.pindex = append(s.pindex, i)
			}
		}
	}
	switch {
	case len(s.ready) > 0:
		return 0, true
	case !earliest.IsZero():
		return earliest.Sub(now), true
	default:
		return -1, len(s.pfds) > 0
	}
}

// block waits up to wait (without limit if negative) for the fds in
// s.pfds, waking every cancelCheck to see whether the run was cancelled,
// and adds the subscriptions whose fds became ready to s.ready: at once
// for a direct host fd, after asking the poller again for a hint. A hint
// that woke for nothing was consumed by that PollFD (see fd.HintPoller),
// so the next wait does not return at once for it.
func (s *System) block(ctx context.Context, subs []sub, wait time.Duration) Errno {
	capped := wait
	if ctx.Done() != nil && (capped < 0 || capped > cancelCheck) {
		capped = cancelCheck
	}
	var ts *unix.Timespec
	if capped >= 0 {
		t := unix.NsecToTimespec(int64(capped))
		ts = &t
	}
	if len(s.pfds) > 0 {
		if _, err := ppoll(s.pfds, ts, nil); err != nil && err != unix.EINTR {
			return errnoOf(err)
		}
	} else {
		sleep(ctx, capped)
	}
	if err := ctx.Err(); err != nil {
		// The run was cancelled: unwind the guest.
		s.unwind = context.Cause(ctx)
		return EINTR
	}
	for j, p := range s.pfds {
		if p.Revents == 0 {
			continue
		}
		sb := &subs[s.pindex[j]]
		pe := pending{sub: s.pindex[j], hasData: true}
		if p.Revents&unix.POLLHUP != 0 {
			pe.flags = eventHangup
		}
		switch {
		case p.Revents&unix.POLLNVAL != 0:
			pe.errno = EBADF
		case sb.hint:
			// The descriptor may be ready: it is if PollFD says so (an
			// error or end of stream counts, for the next call to
			// report).
			if _, ready := sb.poller.PollFD(sb.tag == tagFdWrite); !ready {
				continue
			}
		case p.Revents&unix.POLLERR != 0 && p.Revents&(unix.POLLIN|unix.POLLOUT) == 0:
			pe.errno = EIO
		}
		s.ready = append(s.ready, pe)
	}
	return ESUCCESS
}

// writeEvents writes one event per entry of s.ready into outB.
func (s *System) writeEvents(subs []sub, outB []byte) {
	for k, r := range s.ready {
		b := outB[k*eventSize : (k+1)*eventSize]
		clear(b)
		sb := &subs[r.sub]
		le.PutUint64(b, sb.userdata)
		le.PutUint16(b[8:], uint16(r.errno))
		b[10] = sb.tag
		if sb.tag != tagClock && r.hasData && r.errno == ESUCCESS {
			le.PutUint64(b[16:], 1)
		}
		le.PutUint16(b[24:], r.flags)
	}
}

// deadline converts a clock subscription into a point in (monotonic) time.
func (s *System) deadline(now time.Time, id uint32, timeout uint64, flags uint16) (time.Time, Errno) {
	if flags&^subclockAbstime != 0 {
		return time.Time{}, EINVAL
	}
	if _, errno := s.now(id); errno != ESUCCESS {
		return time.Time{}, errno
	}
	t := int64(min(timeout, math.MaxInt64))
	if flags&subclockAbstime == 0 {
		return addSat(now, t), ESUCCESS
	}
	if id == clockMonotonic {
		return addSat(s.start, t), ESUCCESS
	}
	// Realtime absolute: measure the distance on the wall clock now.
	return addSat(now, t-time.Now().UnixNano()), ESUCCESS
}

// addSat adds ns to t, saturating at about 290 years.
func addSat(t time.Time, ns int64) time.Time {
	const far = int64(math.MaxInt64 / 2)
	return t.Add(time.Duration(max(min(ns, far), -far)))
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// await waits until p is ready for reading (write false) or writing, for
// the calls the guest made blocking (fd_read, fd_write, sock_recv,
// sock_send, sock_accept): they try the stream without waiting, and wait
// here when it would block, so that a cancelled run unwinds the guest as
// from poll_oneoff (EINTR) instead of leaving it waiting in the host for
// a peer. A host fd that is only a hint (fd.HintPoller) counts when the
// poller, asked again, says ready.
func (s *System) await(ctx context.Context, p fd.Poller, write bool) Errno {
	hint := false
	if h, ok := p.(fd.HintPoller); ok {
		hint = h.PollHint(write)
	}
	ev := int16(unix.POLLIN)
	if write {
		ev = unix.POLLOUT
	}
	var ts *unix.Timespec
	if ctx.Done() != nil {
		t := unix.NsecToTimespec(int64(cancelCheck))
		ts = &t
	}
	pfd := make([]unix.PollFd, 1)
	for {
		if err := ctx.Err(); err != nil {
			s.unwind = context.Cause(ctx)
			return EINTR
		}
		hostfd, ready := p.PollFD(write)
		if ready || hostfd < 0 {
			return ESUCCESS
		}
		pfd[0] = unix.PollFd{Fd: int32(hostfd), Events: ev}
		n, err := ppoll(pfd, ts, nil)
		if err != nil && err != unix.EINTR {
			return errnoOf(err)
		}
		if n > 0 && !hint {
			return ESUCCESS
		}
	}
}
