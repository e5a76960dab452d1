-- A database written by pilot-tui at commit 45c0b6d; made by make_fixtures.py.
BEGIN TRANSACTION;
CREATE TABLE answers (
    request_id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    result BLOB NOT NULL,
    decided_at REAL NOT NULL
);
INSERT INTO "answers" VALUES('req-1','0:0000.0000.0001',X'7B22737461747573223A22626C6F636B6564227D',1000.0);
CREATE TABLE blocks (
    ip TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    request_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    reason TEXT,
    event_id TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
INSERT INTO "blocks" VALUES('203.0.113.7','nftables','req-1','0:0000.0000.0001','m-1','brute force','ev-1',1000.0,4600.0);
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    request_id TEXT,
    sender TEXT,
    message_id TEXT,
    action TEXT,
    ip TEXT,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    argv TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO "history" VALUES(1,1000.0,'request','req-1','0:0000.0000.0001','m-1','block','203.0.113.7','blocked','','[["nft","add","element"]]');
CREATE TABLE obey_pins (
    hostname TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    node_id INTEGER,
    pinned_at REAL NOT NULL
);
INSERT INTO "obey_pins" VALUES('orch.example','0:0000.0000.0001',1,999.0);
CREATE TABLE processed (
    message_id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
INSERT INTO "processed" VALUES('m-1',1000.0);
CREATE TABLE replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    reply_to TEXT,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL
);
INSERT INTO "replies" VALUES(1,'0:0000.0000.0001','m-1',X'7B22737461747573223A22626C6F636B6564227D',1000.0,1000.0,0,NULL,NULL);
CREATE INDEX blocks_expiry ON blocks (expires_at);
CREATE INDEX history_request ON history (request_id);
CREATE INDEX replies_due ON replies (sent_at, next_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('history',1);
INSERT INTO "sqlite_sequence" VALUES('replies',1);
COMMIT;
