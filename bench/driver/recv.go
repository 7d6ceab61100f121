package driver

import (
	"errors"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/chatproto"
)

// onPush is the receive path of every client (its reader goroutine). It
// allocates nothing for onChat once the receiver has seen each sender.
func (d *driver) onPush(p *client.Push) {
	id := p.Client.ID
	if id < 0 || int(id) >= len(d.clients) {
		return
	}
	v := d.clients[id]
	switch string(p.Route) {
	case chatproto.PushChat:
		d.onChat(v, p)
	case chatproto.PushAdd:
		// a newcomer's onAdd of itself is not counted (stock pomelo sends
		// none, but can once on a connector's first push over a new link)
		if j, ok := d.byName[string(client.UserField(p))]; ok && j != id {
			d.clients[j].addSeen.Add(1)
			if t := d.clients[j].moveAt.Load(); t > 0 {
				v.rec.Record(d.opAdd, time.Duration(p.At-t))
			}
		}
	case chatproto.PushLeave:
		j, ok := d.byName[string(client.UserField(p))]
		if !ok {
			return
		}
		u := d.clients[j]
		if t := u.moveAt.Load(); t > 0 {
			v.rec.Record(metrics.OpLeave, time.Duration(p.At-t))
		}
		if u.leaving.Load() && !v.leaving.Load() {
			if r := u.leftRoom.Load(); r >= 0 {
				d.rooms[r].leaveSeen.Add(1)
				u.leaveSeen.Add(1)
			}
		}
	}
}

func (d *driver) onChat(v *vclient, p *client.Push) {
	msg, ok := client.ChatMsg(p)
	if !ok {
		d.protoErrs.Add(1)
		v.rec.Error(metrics.OpDelivery, 0, metrics.KindProtocol)
		return
	}
	st, ok := parseStamp(msg)
	if !ok {
		return // not a driver message (someone else chatting in the room)
	}
	if sp := d.split; sp != nil && int(st.sender) < len(sp.owner) {
		if o := sp.owner[st.sender]; int(o) != sp.Index {
			d.onRemoteChat(v, p, st, o)
			return
		}
	}
	e := d.tab.get(st.gid)
	if e == nil {
		d.protoErrs.Add(1)
		v.rec.Error(metrics.OpDelivery, 0, metrics.KindProtocol)
		return
	}
	if _, dup := d.checkSeq(v, st); dup {
		return
	}
	// was v a recipient? a member of the sender's room when it was sent
	// (the private target only), or a member in transit (room switch)
	class := notRecipient
	if seq := e.pub.Load(); seq > 0 && (e.target < 0 || e.target == v.idx) {
		class = d.pres[v.idx].class(e.room, seq)
	}
	switch class {
	case notRecipient:
		v.rec.Add(metrics.Misrouted, 1)
		if r := e.pub.Load(); r > 0 {
			d.rooms[e.room].misrouted.Add(1)
		}
		d.log.Debug("misrouted onChat", "to", v.name, "sender", st.sender, "gid", st.gid)
		return
	case transitRecipient:
		e.extra.Add(1)
	default:
		e.delivered.Add(1)
	}
	for {
		l := e.last.Load()
		if p.At <= l || e.last.CompareAndSwap(l, p.At) {
			break
		}
	}
	v.rec.Record(metrics.OpDelivery, time.Duration(p.At+d.shift()-st.intended))
}

func (d *driver) onKick(c *client.Client, reason []byte) {
	if id := c.ID; id >= 0 && int(id) < len(d.clients) {
		d.log.Warn("kicked", "user", d.clients[id].name, "reason", string(reason))
	}
}

// onClosed runs when a client's reader stops; a close the driver did not ask
// for is an error and takes the member out of its room.
func (d *driver) onClosed(c *client.Client, err error) {
	id := c.ID
	if id < 0 || int(id) >= len(d.clients) {
		return
	}
	v := d.clients[id]
	if err == nil || v.localStop.Load() {
		return
	}
	if v.c.CompareAndSwap(c, nil) {
		d.connected.Add(-1)
		v.rec.Add(metrics.Connected, -1)
	}
	if r := v.cur.Swap(-1); r >= 0 {
		d.rooms[r].leaveMember(v.idx)
	}
	kind := metrics.KindClosed
	switch {
	case errors.Is(err, client.ErrKicked):
		kind = metrics.KindKicked
	case errors.Is(err, client.ErrHeartbeatTimeout):
		kind = metrics.KindTimeout
	case errors.Is(err, client.ErrSendStalled):
		kind = KindStalled
	}
	v.rec.Error(metrics.OpDelivery, 0, kind)
	d.log.Warn("connection lost", "user", v.name, "err", err)
}

// checkSeq checks a delivery's sequence number against the last one v got
// from the same sender and counts a duplicate or an out-of-order delivery
// (in the run and in v's current room r, which it returns). A duplicate is
// not accounted further.
func (d *driver) checkSeq(v *vclient, st stamp) (r int32, dup bool) {
	last, seen := v.lastSeq.slot(st.sender)
	r = v.cur.Load()
	switch {
	case seen && st.seq == *last:
		v.rec.Add(metrics.Duplicated, 1)
		if r >= 0 {
			d.rooms[r].dup.Add(1)
		}
		return r, true
	case seen && st.seq < *last:
		v.rec.Add(metrics.OutOfOrder, 1)
		if r >= 0 {
			d.rooms[r].ooo.Add(1)
		}
	default:
		*last = st.seq
	}
	return r, false
}
