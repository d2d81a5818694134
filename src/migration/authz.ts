/**
 * Who may migrate into this VM: QEMU's authorization objects, asked about an identity (for a TLS
 * migration, the distinguished name of the client's certificate, see tls-session.ts).
 *
 *   authz-simple  identity=ID          allows exactly ID
 *   authz-list    rules=[RULE...]      the first rule whose `match` matches decides (its `policy`);
 *                 policy=deny|allow    when none matches, this policy decides. Defaults to deny.
 *   RULE          match=TEXT, policy=deny|allow, format=exact|glob (defaults to exact); a glob's `*`
 *                 stands for any run of characters and `?` for any one character.
 */

/** Decides whether an identity is allowed. */
export interface Authz {
  /** The object's id, which `tls-authz` names. */
  readonly id: string;
  /** Whether `identity` may go on. */
  isAllowed(identity: string): boolean;
}

/** authz-list's policies (QEMU's `QAuthZListPolicy`). */
export type AuthzPolicy = 'deny' | 'allow';

/** One rule of an authz-list (QEMU's `QAuthZListRule`). */
export interface AuthzRule {
  readonly match: string;
  readonly policy: AuthzPolicy;
  /** Defaults to exact. */
  readonly format?: 'exact' | 'glob';
}

/** authz-simple: one identity is allowed, every other denied. */
export class AuthzSimple implements Authz {
  constructor(
    readonly id: string,
    readonly identity: string,
  ) {}

  isAllowed(identity: string): boolean {
    return identity === this.identity;
  }
}

/** authz-list: rules in order, then a default policy. */
export class AuthzList implements Authz {
  constructor(
    readonly id: string,
    readonly rules: readonly AuthzRule[] = [],
    /** Defaults to deny. */
    readonly policy: AuthzPolicy = 'deny',
  ) {}

  isAllowed(identity: string): boolean {
    for (const rule of this.rules) {
      const matches = rule.format === 'glob' ? globMatches(rule.match, identity) : rule.match === identity;
      if (matches) return rule.policy === 'allow';
    }
    return this.policy === 'allow';
  }
}

/** Whether `text` matches `pattern`, where `*` is any run of characters and `?` any one character. */
export function globMatches(pattern: string, text: string): boolean {
  // Iterative wildcard matching with one backtrack point (the last `*`): linear in practice, no regex.
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
