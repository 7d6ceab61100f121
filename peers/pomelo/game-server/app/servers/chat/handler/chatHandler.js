'use strict';

function ChatHandler(app) {
  this.app = app;
}

// send pushes onChat {msg, from, target} from the session's member: to the
// whole room when target is "*", else only to member target of the room.
// The session's room and name are used, not the body's.
ChatHandler.prototype.send = function (msg, session, next) {
  var rid = session.get('rid');
  var channels = this.app.get('channelService');
  var body = { msg: msg.content, from: session.uid.split('*')[0], target: msg.target };
  var channel = channels.getChannel(rid, false);
  if (msg.target === '*') {
    channel.pushMessage('onChat', body);
  } else {
    var uid = msg.target + '*' + rid;
    var member = channel.getMember(uid);
    channels.pushMessageByUids('onChat', body, [{ uid: uid, sid: member.sid }]);
  }
  next(null, { route: msg.route });
};

module.exports = function (app) {
  return new ChatHandler(app);
};
