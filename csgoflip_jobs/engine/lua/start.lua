-- (lib/events.lua and lib/start_try.lua are prepended.)
-- Marks a delivered try as started, or says why it must not run (see start_try).
-- KEYS: job hash, active set, events, paused flag
-- ARGV: 1 job id, 2 attempt (1-based), 3 task name, 4 queue, 5 the message's delivery
--       tag, 6 run token (unique per delivery handled), 7 stalls allowed, 8 events kept
-- Returns start_try's verdict: 1 run, 0 stale, 2 stalled out, 3 paused.
return start_try(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                 ARGV[5], ARGV[6], ARGV[7], ARGV[8])
