package redis

import "strconv"

// A product has two keys in Redis: its value, under Prefix+id, as the
// caller gave it (so that nodes of an older release, which write and read
// that key alone, keep reading values they understand during a rolling
// upgrade); and beside it, under versionKey, the order of the write that
// set it: the version in decimal, then the kind's byte. The version key
// also marks a deletion, or a write Redis missed, while the value key is
// gone. setScript writes both at once, so the two keys of a product must
// live on one Redis: the cache is a single Redis (ForceSingleClient), not
// a cluster.

// versionSuffix makes a product's version key of its value key; product
// ids never contain a colon.
const versionSuffix = ":version"

func versionKey(key string) string { return key + versionSuffix }

// kind is what a write left. Kinds are ordered: at one version a stale
// marker (a write of that version failed to reach Redis: nothing older may
// be read) comes before the value, and the value before the deletion
// marker, which is the product's last change.
type kind int8

const (
	kindStale kind = iota
	kindValue
	kindDeleted
)

// kinds spells each kind in a version key, in kind order; setScript relies
// on both the spelling and the order.
const kinds = "~=!"

// order is where a write stands among a product's writes: the newest has
// the highest version, and at one version the highest kind.
type order struct {
	version int64
	kind    kind
}

// after reports whether o supersedes p.
func (o order) after(p order) bool {
	return o.version > p.version || o.version == p.version && o.kind > p.kind
}

// encode returns what the version key holds after the write o: the
// version in decimal without leading zeros (so that setScript compares
// versions of any size as text), then the kind's byte.
func (o order) encode() string {
	return strconv.FormatInt(max(o.version, 0), 10) + kinds[o.kind:o.kind+1]
}

// setScript applies a write unless the product's version key holds one as
// new or newer, so that of the writes of a product the newest stays however
// late the others arrive. Redis runs a script whole: no write slips between
// the comparison and the write. A value key without a version key (written
// by an older release, or whose version key was evicted) is overwritten; a
// version key whose value key is gone (evicted, or deleted by an older
// release) stands as a stale marker of its version, so that a refill of
// that version puts the value back.
//
// KEYS[1]: the value key; KEYS[2]: the version key.
// ARGV[1]: the write's order (order.encode); ARGV[2]: the TTL, ms; ARGV[3]:
// the value, for a write of kind value.
// Returns 1 when it wrote, 0 when it refused.
const setScript = `
local function parse(e)
  local v, k = string.match(e, '^(%d+)([~=!])$')
  if not v then return nil end
  return v, string.find('~=!', k, 1, true)
end
-- compare decimal strings without leading zeros: -1, 0 or 1
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y and -1 or 1 end
  end
  return 0
end
local nv, nk = parse(ARGV[1])
local cur = redis.call('GET', KEYS[2])
if cur then
  local cv, ck = parse(cur)
  if cv then
    if ck == 2 and redis.call('EXISTS', KEYS[1]) == 0 then ck = 1 end
    local c = cmp(cv, nv)
    if c > 0 or (c == 0 and ck >= nk) then
      return 0
    end
  end
end
if nk == 2 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`
