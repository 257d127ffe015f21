// What every SDK script shares: the 15.3.0 client pointed at the dev mode, and the checks
// (one JSON line each; the first failure exits 1).
import Mux from '@mux/mux-node';

export function client() {
  return new Mux({
    tokenId: process.env.MUX_TOKEN_ID,
    tokenSecret: process.env.MUX_TOKEN_SECRET,
    baseURL: process.env.SPACECAST_BASE_URL,
  });
}

export function check(name, ok, detail) {
  console.log(JSON.stringify({ check: name, ok: !!ok, detail }));
  if (!ok) process.exit(1);
}

// rejects awaits p and checks that it rejects with an error of class cls (whose message
// includes mention, when given).
export async function rejects(name, p, cls, mention) {
  try {
    await p;
  } catch (e) {
    check(name, e instanceof cls && (!mention || String(e.message).includes(mention)), `${e?.constructor?.name}: ${e?.message}`);
    return;
  }
  check(name, false, 'no error');
}
