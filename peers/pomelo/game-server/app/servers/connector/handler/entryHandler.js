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

// switchRoom is the one route beyond the stock demo: chatbench's reference
// server has it (its hop scenario moves members between rooms on one
// socket), and this app answers it the same way, built from the stock
// pieces: the session is bound to "username*rid" of the new room, the
// member joins it (onAdd to the members there, the room's names answered)
// and then leaves the old room (onLeave there). A name taken in the new room
// (on this connector, as enter checks) gets {code:500, error:true} and the
// member stays where it was; a session that has not entered gets 403.
EntryHandler.prototype.switchRoom = function (msg, session, next) {
  var app = this.app;
  var from = session.get('rid');
  var rid = msg.rid;
  if (!session.uid || from === undefined) {
    next(null, { code: 403, error: true });
    return;
  }
  var old = session.uid;
  var uid = old.split('*')[0] + '*' + rid;
  if (rid === from || app.get('sessionService').getByUid(uid)) {
    next(null, { code: 500, error: true });
    return;
  }
  session.unbind(old, function (err) {
    if (err) {
      next(err);
      return;
    }
    session.bind(uid, function (err) {
      if (err) {
        next(err);
        return;
      }
      session.set('rid', rid);
      session.push('rid', function (err) {
        if (err) {
          console.error('push rid to the session service: %j', err.stack);
        }
      });
      app.rpc.chat.chatRemote.add(session, uid, app.get('serverId'), rid, true, function (users) {
        app.rpc.chat.chatRemote.kick(inRoom(from), old, app.get('serverId'), from, function () {
          next(null, { users: users });
        });
      });
    });
  });
};

// inRoom is a route parameter for the chat server of room rid.
function inRoom(rid) {
  return {
    get: function (key) {
      return key === 'rid' ? rid : undefined;
    }
  };
}

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
