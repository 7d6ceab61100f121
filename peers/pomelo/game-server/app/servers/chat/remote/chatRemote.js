'use strict';

function ChatRemote(app) {
  this.app = app;
  this.channels = app.get('channelService');
}

function nameOf(uid) {
  return uid.split('*')[0];
}

// add tells the room's members of the newcomer (onAdd), then adds it to the
// room's channel, and answers the member names (the newcomer included).
// The push goes out before the add, so the newcomer gets no onAdd of itself.
ChatRemote.prototype.add = function (uid, sid, rid, create, cb) {
  var channel = this.channels.getChannel(rid, create);
  channel.pushMessage({ route: 'onAdd', user: nameOf(uid) });
  channel.add(uid, sid);
  cb(this.members(rid, create));
};

// members returns the names in room rid, in channel order.
ChatRemote.prototype.members = function (rid, create) {
  var channel = this.channels.getChannel(rid, create);
  return channel ? channel.getMembers().map(nameOf) : [];
};

// kick takes uid out of room rid and tells the rest (onLeave).
ChatRemote.prototype.kick = function (uid, sid, rid, cb) {
  var channel = this.channels.getChannel(rid, false);
  if (channel) {
    channel.leave(uid, sid);
    channel.pushMessage({ route: 'onLeave', user: nameOf(uid) });
  }
  cb();
};

module.exports = function (app) {
  return new ChatRemote(app);
};
