'use strict';

function EntryHandler(app) {
  this.app = app;
}

// enter binds the session to uid "username*rid" (refused with
// {code:500, error:true} when that uid is already on this connector), joins
// the room on its chat server and answers the room's member names.
EntryHandler.prototype.enter = function (msg, session, next) {
  var app = this.app;
  var rid = msg.rid;
  var uid = msg.username + '*' + rid;
  if (app.get('sessionService').getByUid(uid)) {
    next(null, { code: 500, error: true });
    return;
  }
  session.bind(uid);
  session.set('rid', rid);
  session.push('rid', function (err) {
    if (err) {
      console.error('push rid to the session service: %j', err.stack);
    }
  });
  session.on('closed', leave.bind(null, app));
  app.rpc.chat.chatRemote.add(session, uid, app.get('serverId'), rid, true, function (users) {
    next(null, { users: users });
  });
};

// leave takes a closed session's member out of its room.
function leave(app, session) {
  if (!session || !session.uid) {
    return;
  }
  app.rpc.chat.chatRemote.kick(session, session.uid, app.get('serverId'), session.get('rid'), null);
}

module.exports = function (app) {
  return new EntryHandler(app);
};
