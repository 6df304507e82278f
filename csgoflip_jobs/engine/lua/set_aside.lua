-- (lib/dead_letter.lua and lib/unacked.lua are prepended.)
-- Moves a delivered message that kombu could not build (bad body encoding...) to
-- the dead letters and drops its unacked entry, in one step.
-- KEYS: dead-letter list, unacked hash, unacked index zset
-- ARGV: the message (JSON text), its delivery tag, reason, dead letters kept
-- Returns 1.
dead_letter(KEYS[1], ARGV[4], ARGV[1], ARGV[3])
drop_unacked(KEYS[2], KEYS[3], ARGV[2])
return 1
