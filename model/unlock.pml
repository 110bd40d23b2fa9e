/*
 * unlatch protocol v1, phone unlock: a symbolic model for the Spin model checker.
 *
 * Run:  spin -a unlock.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan -m100000
 * (tests/test_protocol_model.py does this and requires "errors: 0").
 *
 * Cryptography is modelled symbolically (Dolev-Yao style): an unlock reply is
 * a record whose inner fields (bound request id, PSK from the QR secret,
 * authenticated sender, verdict) can only be produced by a principal that
 * knows the matching secrets; its clear header (the request id the relay
 * routes by) can be rewritten by anyone. The relay is the attacker: it sees
 * every reply, may drop, delay, reorder, replay and redirect them, rewrite
 * headers, and inject replies built from what it knows. It never sees the
 * desktop's screen, except in the SHOULDER_SURFER variant where it also learns
 * every QR secret (and must still fail, for it lacks the phone's key).
 * A second desktop, not paired with the phone, may put a phishing QR in front
 * of the phone's camera.
 *
 * Checked (assertions):
 *  A1 no forged unlock: the desktop approves request r only if the phone approved r;
 *  A2 single use: each request reaches at most one final decision;
 *  A3 freshness: no approval after the request's lifetime;
 *  A4 no phishing: the phone never answers a QR from an unpaired desktop;
 *  A5 the phone answers each request at most once.
 *
 * Variants (spin -D...): SHOULDER_SURFER (the relay also sees every QR) must
 * still verify. Each mutant drops checks of the desktop and must yield a
 * counterexample, which shows the model can fail: MUTANT_NO_SENDER_AUTH (with
 * SHOULDER_SURFER: the relay forges a reply), MUTANT_UNBOUND_REPLY (a reply is
 * not tied to its request: replay across requests), MUTANT_NO_EXPIRY (a reply
 * held back by the relay is accepted late), MUTANT_PHONE_TRUSTS_ANY_QR (the
 * phone answers a phishing QR).
 */

#define NREQ 2          /* requests made by the paired desktop */
#define TTL 2           /* lifetime in clock ticks */
#define MAXT 4          /* the clock stops here (bounds the state space) */
#define PHONE 1
#define INTRUDER 2
#define APPROVE 1
#define DENY 2
#define NOKEY 0

/* Mutants: each disables one check; the test suite proves the model then finds an attack. */
#ifdef MUTANT_NO_SENDER_AUTH
#define SENDER_OK(m) true
#else
#define SENDER_OK(m) (m.sender == PHONE)
#endif
#ifdef MUTANT_UNBOUND_REPLY
#define BOUND(m) true
#define PSK_OK(m) true
#else
#define BOUND(m) (m.bound_rid == r)
#define PSK_OK(m) (m.psk == 20 + r)
#endif
#ifdef MUTANT_PHONE_TRUSTS_ANY_QR
#define REFUSE_UNPAIRED(p) false
#else
#define REFUSE_UNPAIRED(p) (!p)
#endif
#ifdef MUTANT_NO_EXPIRY
#define FRESH(t) true
#else
#define FRESH(t) (t <= created[r] + TTL)
#endif

/* desktop request states */
#define WAITING 1
#define APPROVED 2
#define DENIED 3
#define FAILED 4
#define EXPIRED 5

typedef Reply {
  byte hdr_rid;    /* clear: the relay routes by it and may rewrite it */
  byte bound_rid;  /* bound into HPKE info/AAD: cannot be changed */
  byte psk;        /* the QR secret the reply was keyed with */
  byte sender;     /* who authenticated it (HPKE auth mode) */
  byte verdict
};

byte now = 0;
byte state[NREQ + 1];
byte created[NREQ + 1];
byte decisions[NREQ + 1];
bool phone_approved[NREQ + 1];
byte phone_answers[NREQ + 1];
bool phished_reply_sent = false;
bool qr_seen_by_relay[NREQ + 1];   /* only in the SHOULDER_SURFER variant */

chan screen = [1] of { bool, byte, byte };   /* paired?, request id, QR secret */
chan to_relay = [2] of { Reply };
chan to_desktop = [1] of { Reply };

active proctype Clock() {
  do
  :: now < MAXT -> now++
  :: now >= MAXT -> break
  od
}

active proctype Desktop() {
  byte r = 1, t;                     /* t: the time passed in to one step */
  Reply m;
  do
  :: r > NREQ -> break
  :: r <= NREQ ->
     state[r] = WAITING;
     created[r] = now;
end_show:
     screen!true, r, 20 + r;          /* the QR, on this desktop's screen */
#ifdef SHOULDER_SURFER
     qr_seen_by_relay[r] = true;
#endif
end_wait:
     do
     :: state[r] != WAITING -> break
     :: (state[r] == WAITING && !FRESH(now)) ->
          state[r] = EXPIRED; decisions[r]++
     :: atomic { to_desktop?m ->
          t = now;
          if
          :: m.hdr_rid != r -> skip                   /* wrong_request: no state change */
          :: (m.hdr_rid == r && state[r] != WAITING) -> skip  /* already_answered */
          :: (m.hdr_rid == r && state[r] == WAITING) ->
               if
               :: !FRESH(t) -> state[r] = EXPIRED
               :: (FRESH(t) && BOUND(m) && PSK_OK(m) && SENDER_OK(m)) ->
                    if
                    :: m.verdict == APPROVE ->
                         assert(phone_approved[r]);                  /* A1 */
                         assert(t <= created[r] + TTL);              /* A3 */
                         state[r] = APPROVED
                    :: m.verdict != APPROVE -> state[r] = DENIED
                    fi
               :: else -> state[r] = FAILED                  /* authentication_failed */
               fi;
               decisions[r]++
          fi;
          m.hdr_rid = 0; m.bound_rid = 0; m.psk = 0; m.sender = 0; m.verdict = 0; t = 0 }
     od;
     assert(decisions[r] <= 1);                                      /* A2 */
     r++
  od
}

/* A second desktop, never paired with the phone, shows a phishing QR. */
active proctype PhishingDesktop() {
end_phish:
  if
  :: screen!false, 1, 99
  :: skip
  fi
}

active proctype Phone() {
  bool paired; byte rid, q;
  Reply out;
end_phone:
  do
  :: atomic { screen?paired, rid, q ->
       if
       :: REFUSE_UNPAIRED(paired) -> skip   /* unknown_pairing: refuse, send nothing */
       :: else ->
          if
          :: phone_answers[rid] > 0 -> skip     /* replay guard */
          :: phone_answers[rid] == 0 ->
               out.hdr_rid = rid; out.bound_rid = rid; out.psk = q; out.sender = PHONE;
               if
               :: out.verdict = APPROVE; phone_approved[rid] = paired
               :: out.verdict = DENY
               fi;
               phone_answers[rid]++;
               assert(phone_answers[rid] <= 1);                      /* A5 */
               phished_reply_sent = phished_reply_sent || !paired;
               to_relay!out
          :: phone_answers[rid] == 0 -> skip    /* the user ignores it */
          fi
       fi;
       assert(!phished_reply_sent);                                  /* A4 */
       paired = false; rid = 0; q = 0;
       out.hdr_rid = 0; out.bound_rid = 0; out.psk = 0; out.sender = 0; out.verdict = 0 }
  :: timeout -> break
  od
}

/* The relay: forwards, drops, replays, redirects and forges. */
active proctype Relay() {
  Reply seen[1];
  byte nseen = 0, i, r;
  Reply m, f;
end_relay:
  do
  :: atomic { to_relay?m ->
       if
       :: nseen < 1 -> seen[nseen].hdr_rid = m.hdr_rid; seen[nseen].bound_rid = m.bound_rid;
                       seen[nseen].psk = m.psk; seen[nseen].sender = m.sender;
                       seen[nseen].verdict = m.verdict; nseen++
       :: else -> skip
       fi;
       m.hdr_rid = 0; m.bound_rid = 0; m.psk = 0; m.sender = 0; m.verdict = 0 }
  :: nseen > 0 && nfull(to_desktop) ->  /* replay a captured reply, header rewritten */
       atomic {
         select(i : 0 .. nseen - 1);
         select(r : 1 .. NREQ);
         f.hdr_rid = r; f.bound_rid = seen[i].bound_rid; f.psk = seen[i].psk;
         f.sender = seen[i].sender; f.verdict = seen[i].verdict;
         to_desktop!f;
         i = 0; r = 0; f.hdr_rid = 0; f.bound_rid = 0; f.psk = 0; f.sender = 0; f.verdict = 0
       }
  :: nfull(to_desktop) ->              /* forge from its own knowledge */
       atomic {
         select(r : 1 .. NREQ);
         f.hdr_rid = r; f.bound_rid = r; f.sender = INTRUDER; f.verdict = APPROVE;
         if
         :: qr_seen_by_relay[r] -> f.psk = 20 + r
         :: else -> f.psk = NOKEY
         fi;
         to_desktop!f;
         r = 0; f.hdr_rid = 0; f.bound_rid = 0; f.psk = 0; f.sender = 0; f.verdict = 0
       }
  :: timeout -> break
  od
}
