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
 * A request's QR stays on the desktop's screen while the request waits, so
 * the phone may scan it (and be asked to answer it) more than once.
 *
 * Checked (assertions):
 *  A1 no forged unlock: the desktop approves request r only if the phone approved r;
 *  A2 single use: each request reaches at most one final decision;
 *  A3 freshness: no approval after the request's lifetime;
 *  A4 no phishing: the phone never answers a QR from an unpaired desktop;
 *  A5 the phone answers each request at most once.
 *
 * Variants (spin -D...): SHOULDER_SURFER (the relay also sees every QR) must
 * still verify. Each mutant drops one check and must yield a counterexample,
 * which shows the model can fail and what the check is for:
 * MUTANT_NO_SENDER_AUTH (with SHOULDER_SURFER: the relay forges a reply; A1),
 * MUTANT_UNBOUND_REPLY (a reply is not tied to its request: replay across
 * requests; A1), MUTANT_NO_EXPIRY (a reply held back by the relay is accepted
 * late; A3), MUTANT_PHONE_TRUSTS_ANY_QR (the phone answers a phishing QR; A4),
 * MUTANT_NO_STATE_CHECK (the desktop opens a reply for a request that is
 * already decided: a replayed reply decides it again; A2) and
 * MUTANT_NO_REPLAY_GUARD (the phone answers a rescanned QR again; A5).
 *
 * Not modelled (docs/security.md, "The formal model"): number matching (the
 * phone answering from the push, without the QR), and the phone's own expiry
 * check (only the desktop's, which is what guards K_P, is checked here).
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
#ifdef MUTANT_NO_STATE_CHECK
#define UNDECIDED(x) true
#else
#define UNDECIDED(x) (state[x] == WAITING)    /* a decided request takes no reply */
#endif
#ifdef MUTANT_NO_REPLAY_GUARD
#define ANSWERED(x) false
#else
#define ANSWERED(x) (phone_answers[x] > 0)    /* the phone's replay guard */
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
     :: (state[r] == WAITING && nfull(screen)) ->
          screen!true, r, 20 + r               /* the QR is still up: scanned again */
     :: atomic { to_desktop?m ->
          t = now;
          if
          :: m.hdr_rid != r -> skip                   /* wrong_request: no state change */
          :: (m.hdr_rid == r && !UNDECIDED(r)) -> skip  /* already_answered */
          :: (m.hdr_rid == r && UNDECIDED(r)) ->
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
          :: ANSWERED(rid) -> skip              /* already_answered: send nothing */
          :: else ->
               if
               :: out.hdr_rid = rid; out.bound_rid = rid; out.psk = q; out.sender = PHONE;
                  if
                  :: out.verdict = APPROVE; phone_approved[rid] = paired
                  :: out.verdict = DENY
                  fi;
                  phone_answers[rid]++;
                  assert(phone_answers[rid] <= 1);                   /* A5 */
                  phished_reply_sent = phished_reply_sent || !paired;
                  to_relay!out
               :: skip                          /* the user ignores it */
               fi
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
