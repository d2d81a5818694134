/**
 * ARM SMMUv3 (a simplified stage-2 translation unit, saved as QEMU 7.2's "smmuv3" section).
 *
 * Mirrors the SMMUv3 architecture (ARM IHI 0070) where it matters for migration:
 *   - registers, kept in the section's fields: IDR1.SIDSIZE [5:0] (`sid_size`), CR0 0x20 with SMMUEN bit 0
 *     (`cr[0]`), CR0ACK 0x24 mirroring it (`cr0ack`), STRTAB_BASE 0x80 (ADDR bits [51:6], `strtab_base`),
 *     STRTAB_BASE_CFG 0x88 (LOG2SIZE [5:0], SPLIT [10:6], FMT [17:16], `strtab_base_cfg`);
 *   - a linear stream table of 64-byte STEs indexed by StreamID (= the PCI requester ID, bus << 8 | devfn);
 *     STE dword 0: V bit 0, Config bits [3:1] (0b000 abort, 0b100 bypass, 0b110 stage 2 translate);
 *     dword 2: S2VMID [15:0], S2T0SZ [37:32], S2SL0 [39:38], S2TG [47:46], S2PS [50:48], S2AA64 bit 51;
 *     dword 3: S2TTB [51:4] (the spec's STE[243:196]; Linux's STRTAB_STE_3_S2TTB_MASK, QEMU's word[6..7]);
 *   - stage-2 tables of 4 KiB granule, 4 levels of 512 8-byte descriptors for a 48-bit IOVA: bit 0 valid,
 *     bit 1 table (levels 0-2) or page (level 3), output address [47:12], S2AP [7:6] on the leaf
 *     (bit 6 read, bit 7 write);
 *   - fault names are the spec's event types (C_BAD_STREAMID, F_STE_FETCH, C_BAD_STE, F_TRANSLATION,
 *     F_PERMISSION, F_WALK_EABT).
 * Simplified: stage 2 only (S2T0SZ, S2SL0, S2TG and S2PS are written by the driver but the walk always
 * assumes 48 bits, 4 KiB, level 0 start); linear stream table only; no block descriptors, no IOTLB, no
 * command or event queue (driverFlush() acts as CFGI_ALL + CMD_SYNC at once), no MSIs, no GBPA (with
 * SMMUEN off every DMA aborts, as with GBPA.ABORT = 1).
 *
 * The per-device configuration cache (QEMU's SMMUDevice configs) is what migration order is about: it is
 * rebuilt when the guest sets SMMUEN, on driverFlush(), and in post-load, from each device's requester ID
 * as the bridges' registers give it at that moment. Loaded before the bridges, every device behind a root
 * port is cached under bus 0's StreamID: its DMA faults, or goes through another device's STE.
 */
import { UsageError } from '../errors.js';
import { GuestMemoryError } from '../ram/index.js';
import { defineVmsd, type LoadContext } from '../vmstate/index.js';
import { DmaFault, forEachDeviceInScope, ownsBus, type BridgeToucher, type GuestAllocator, type IommuContext, type IommuModel } from './iommu.js';
import { smmuv3Fields, smmuv3Vmsd, type Smmuv3State } from './layouts/smmuv3.js';
import type { PciFunction } from './pci.js';

/** Register offsets in SMMUv3 page 0 (ARM IHI 0070, chapter 6). */
export const SMMU_REG = { IDR0: 0x00, IDR1: 0x04, CR0: 0x20, CR0ACK: 0x24, STRTAB_BASE: 0x80, STRTAB_BASE_CFG: 0x88 } as const;
/** CR0.SMMUEN. */
const CR0_SMMUEN = 1;
/** STRTAB_BASE_CFG.FMT: 0 linear, 1 two-level. */
const STRTAB_FMT_LINEAR = 0;
const STRTAB_FMT_2LVL = 1;
/** SMMU_FEATURE_2LVL_STE in QEMU's `features`. */
const FEATURE_2LVL_STE = 1;
/** STRTAB_STE_DWORDS * 8. */
const STE_SIZE = 64;
/** STE.Config values (STRTAB_STE_0_CFG_*). */
const STE_CONFIG = { ABORT: 0b000, BYPASS: 0b100, S1_TRANS: 0b101, S2_TRANS: 0b110, NESTED: 0b111 } as const;
/**
 * STE dword 2, high half, as the driver writes it: S2T0SZ 16 (48-bit IOVA), S2SL0 0b10 (start at level 0
 * with 4 KiB), S2TG 0 (4 KiB), S2PS 0b101 (48-bit output), S2AA64.
 */
const STE_2_HI_S2CFG = 16 | (0b10 << 6) | (0b101 << 16) | (1 << 19);
/** Leaf S2AP bits. */
const S2AP_READ = 1 << 6;
const S2AP_WRITE = 1 << 7;
/** Access flag: the driver sets it so no access-flag fault can arise (not checked by the walk). */
const DESC_AF = 1 << 10;
const DESC_VALID = 1;
const DESC_TABLE = 2;
const PAGE = 4096;
/** The IOVA size of the walk: 48 bits, 4 levels. */
const IOVA_LIMIT = 2 ** 48;
/** QEMU's SMMU_CMDQS and SMMU_EVENTQS: reset LOG2SIZE in each queue base's bits [4:0]. */
const QUEUE_LOG2SIZE_RESET = 19n;
/** STRTAB_BASE.ADDR, bits [51:6]. */
const STRTAB_ADDR_MASK = ((1n << 52n) - 1n) & ~63n;

/** What the cache holds per device: the STE it resolved, or why it resolved none, under the StreamID of that moment. */
type CachedSte =
  | { readonly sid: number; readonly valid: true; readonly config: number; readonly vmid: number; readonly s2ttb: number }
  | { readonly sid: number; readonly valid: false; readonly reason: string };

/** Options of `new Smmuv3Unit`. */
export interface Smmuv3Options {
  readonly id: string;
  /** First and last bus number whose devices this unit translates for (its IORT ID mapping). */
  readonly busRange: readonly [number, number];
  readonly ctx: IommuContext;
  /** Called for every function during post-load, before its bus number is read. Defaults to nothing. */
  readonly touchBridges?: BridgeToucher;
}

/** StreamID bits that cover every requester ID up to the last bus of `busRange`: (last + 1) << 8 StreamIDs. */
export function smmuv3SidBits(busRange: readonly [number, number]): number {
  return 8 + Math.ceil(Math.log2(busRange[1] + 1));
}

/** One SMMUv3 unit: registers in `state`, tables in guest RAM, the configuration cache beside them. */
export class Smmuv3Unit implements IommuModel {
  /** Every unit saves as "smmuv3"; the machine gives them instance ids 0, 1, 2, ... */
  readonly idstr = 'smmuv3';
  readonly id: string;
  readonly busRange: readonly [number, number];
  readonly vmsd;
  readonly state: Smmuv3State;
  private readonly ctx: IommuContext;
  private cache = new Map<PciFunction, CachedSte>();

  constructor(options: Smmuv3Options) {
    this.id = options.id;
    this.busRange = options.busRange;
    this.ctx = options.ctx;
    const [first, last] = options.busRange;
    if (!(Number.isInteger(first) && Number.isInteger(last) && first >= 0 && first <= last && last <= 0xff)) {
      throw new UsageError(`${this.id}: bus range [${first}, ${last}] is not within 0..255`);
    }
    // Reset values as QEMU 7.2's smmuv3_init_regs leaves them, except sid_size: QEMU never sets it (its
    // IDR1.SIDSIZE is a constant 16); here it is this unit's IDR1.SIDSIZE, sized to its buses.
    this.state = {
      features: 0,
      sid_size: smmuv3SidBits(options.busRange),
      sid_split: 0,
      cr: [0, 0, 0],
      cr0ack: 0,
      statusr: 0,
      irq_ctrl: 0,
      gerror: 0,
      gerrorn: 0,
      gerror_irq_cfg0: 0n,
      gerror_irq_cfg1: 0,
      gerror_irq_cfg2: 0,
      strtab_base: 0n,
      strtab_base_cfg: 0,
      eventq_irq_cfg0: 0n,
      eventq_irq_cfg1: 0,
      eventq_irq_cfg2: 0,
      cmdq: { base: QUEUE_LOG2SIZE_RESET, prod: 0, cons: 0, log2size: 0 },
      eventq: { base: QUEUE_LOG2SIZE_RESET, prod: 0, cons: 0, log2size: 0 },
    };
    const touch = options.touchBridges;
    this.vmsd = defineVmsd({
      name: smmuv3Vmsd.name,
      version: smmuv3Vmsd.version,
      minVersion: smmuv3Vmsd.minVersion,
      priority: smmuv3Vmsd.priority,
      fields: smmuv3Fields,
      postLoad: (_s, ctx) => this.rebuild(ctx, touch),
    });
  }

  private get enabled(): boolean {
    return (this.state.cr[0] & CR0_SMMUEN) !== 0;
  }

  /** A 32-bit MMIO read of the registers this model has; others read as zero. */
  readReg32(off: number): number {
    const s = this.state;
    switch (off) {
      case SMMU_REG.IDR1:
        return s.sid_size & 0x3f;
      case SMMU_REG.CR0:
        return s.cr[0];
      case SMMU_REG.CR0ACK:
        return s.cr0ack;
      case SMMU_REG.STRTAB_BASE:
        return Number(s.strtab_base & 0xffffffffn);
      case SMMU_REG.STRTAB_BASE + 4:
        return Number(s.strtab_base >> 32n);
      case SMMU_REG.STRTAB_BASE_CFG:
        return s.strtab_base_cfg;
      default:
        return 0;
    }
  }

  /** A 32-bit MMIO write, as the guest driver does it; registers this model does not have ignore it. */
  writeReg32(off: number, v: number): void {
    const s = this.state;
    v >>>= 0;
    switch (off) {
      case SMMU_REG.CR0: {
        const was = this.enabled;
        s.cr[0] = v;
        s.cr0ack = v; // the update takes effect at once, so CR0ACK follows
        if (!was && this.enabled) this.rebuild();
        else if (!this.enabled) this.cache = new Map();
        return;
      }
      case SMMU_REG.STRTAB_BASE:
        s.strtab_base = (s.strtab_base & ~0xffffffffn) | BigInt(v);
        return;
      case SMMU_REG.STRTAB_BASE + 4:
        s.strtab_base = (s.strtab_base & 0xffffffffn) | (BigInt(v) << 32n);
        return;
      case SMMU_REG.STRTAB_BASE_CFG:
        s.strtab_base_cfg = v;
        // As QEMU's smmu_writel: a two-level format records its split and the feature.
        if (((v >>> 16) & 3) === STRTAB_FMT_2LVL) {
          s.sid_split = (v >>> 6) & 0x1f;
          s.features |= FEATURE_2LVL_STE;
        }
        return;
      default:
        return;
    }
  }

  /** The StreamID the cache holds for `dev`, or undefined if it holds none (for inspection). */
  cachedStreamId(dev: PciFunction): number | undefined {
    return this.cache.get(dev)?.sid;
  }

  /** Re-reads the STE of every device on this unit's buses, under its requester ID of this moment. */
  private rebuild(load?: LoadContext, touch?: BridgeToucher): void {
    this.cache = new Map();
    if (!this.enabled) return;
    const cache = this.cache;
    forEachDeviceInScope(this, this.ctx.busGroups(), (dev, sid) => cache.set(dev, this.fetchSte(sid)), load, touch);
  }

  /** Reads and decodes the STE of `sid` from the stream table in guest memory. */
  private fetchSte(sid: number): CachedSte {
    const cfg = this.state.strtab_base_cfg;
    if (((cfg >>> 16) & 3) !== STRTAB_FMT_LINEAR) return { sid, valid: false, reason: 'two-level stream tables are not modelled' };
    const log2size = cfg & 0x3f;
    if (sid >= 2 ** log2size) {
      return { sid, valid: false, reason: `C_BAD_STREAMID: StreamID ${hex4(sid)} is beyond STRTAB_BASE_CFG.LOG2SIZE ${log2size}` };
    }
    const addr = Number(this.state.strtab_base & STRTAB_ADDR_MASK) + sid * STE_SIZE;
    const ram = this.ctx.ram;
    try {
      const w0 = ram.readU32(addr);
      if ((w0 & 1) === 0) return { sid, valid: false, reason: `C_BAD_STE: STE of StreamID ${hex4(sid)} is not valid (V = 0)` };
      const s2ttb = outputAddress(ram.readU32(addr + 24) & ~0xf, ram.readU32(addr + 28) & 0xfffff);
      return { sid, valid: true, config: (w0 >>> 1) & 7, vmid: ram.readU32(addr + 16) & 0xffff, s2ttb };
    } catch (e) {
      if (e instanceof GuestMemoryError) {
        return { sid, valid: false, reason: `F_STE_FETCH: STE of StreamID ${hex4(sid)} at 0x${addr.toString(16)} is outside RAM` };
      }
      throw e;
    }
  }

  translate(dev: PciFunction, iova: number, write: boolean): number {
    const rid = dev.requesterId;
    if (!this.enabled) throw new DmaFault(dev.path, rid, iova, `${this.id} is disabled (CR0.SMMUEN = 0)`);
    const c = this.cache.get(dev);
    if (!c) throw new DmaFault(dev.path, rid, iova, 'no stream table entry cached for this device');
    // A StreamID other than the device's requester ID of now: the cache was built under other bus numbers.
    const stale = c.sid === rid ? '' : ` (cached when the device had StreamID ${hex4(c.sid)})`;
    if (!c.valid) throw new DmaFault(dev.path, rid, iova, c.reason + stale);
    if (c.config === STE_CONFIG.BYPASS) return iova;
    if (c.config !== STE_CONFIG.S2_TRANS) {
      const what = c.config === STE_CONFIG.ABORT ? 'abort' : 'not modelled';
      throw new DmaFault(dev.path, rid, iova, `STE.Config 0b${c.config.toString(2).padStart(3, '0')} (${what})${stale}`);
    }
    if (!Number.isInteger(iova) || iova < 0 || iova >= IOVA_LIMIT) {
      throw new DmaFault(dev.path, rid, iova, `F_TRANSLATION: IOVA beyond 48 bits in VMID ${c.vmid}${stale}`);
    }
    const ram = this.ctx.ram;
    let table = c.s2ttb;
    for (let level = 0; level <= 3; level++) {
      const slot = table + (Math.floor(iova / 2 ** (39 - 9 * level)) % 512) * 8;
      let lo: number;
      let hi: number;
      try {
        lo = ram.readU32(slot);
        hi = ram.readU32(slot + 4);
      } catch (e) {
        if (e instanceof GuestMemoryError) {
          throw new DmaFault(dev.path, rid, iova, `F_WALK_EABT: level ${level} descriptor at 0x${slot.toString(16)} is outside RAM${stale}`);
        }
        throw e;
      }
      if ((lo & (DESC_VALID | DESC_TABLE)) !== (DESC_VALID | DESC_TABLE)) {
        const why = (lo & DESC_VALID) === 0 ? 'no valid descriptor' : 'block descriptors are not modelled';
        throw new DmaFault(dev.path, rid, iova, `F_TRANSLATION: ${why} at level ${level} in VMID ${c.vmid}${stale}`);
      }
      table = outputAddress(lo & 0xfffff000, hi & 0xffff);
      if (level === 3 && (lo & (write ? S2AP_WRITE : S2AP_READ)) === 0) {
        throw new DmaFault(dev.path, rid, iova, `F_PERMISSION: no ${write ? 'write' : 'read'} permission in VMID ${c.vmid}${stale}`);
      }
    }
    return table + (iova % PAGE);
  }

  /** Programs a linear stream table of 2^IDR1.SIDSIZE STEs and sets SMMUEN. (No queues: not modelled.) */
  driverInit(alloc: GuestAllocator): void {
    const sidBits = this.readReg32(SMMU_REG.IDR1) & 0x3f;
    const size = 2 ** sidBits * STE_SIZE;
    const base = alloc.alloc(size, size); // a linear table is aligned to its size
    this.writeReg32(SMMU_REG.STRTAB_BASE, base >>> 0);
    this.writeReg32(SMMU_REG.STRTAB_BASE + 4, Math.floor(base / 0x100000000));
    this.writeReg32(SMMU_REG.STRTAB_BASE_CFG, (STRTAB_FMT_LINEAR << 16) | sidBits);
    this.writeReg32(SMMU_REG.CR0, this.readReg32(SMMU_REG.CR0) | CR0_SMMUEN);
  }

  /**
   * Maps whole pages of [iova, iova + len) to phys. On a device's first use, writes its STE at its
   * requester ID of now: stage 2 translate, VMID = that StreamID (unique on the unit), a new root table.
   * The STE takes effect at the next driverFlush(); new page mappings at once (there is no IOTLB).
   */
  driverMap(alloc: GuestAllocator, dev: PciFunction, iova: number, phys: number, len: number): void {
    if (!ownsBus(this, dev.bus)) {
      throw new UsageError(`${this.id}: ${dev.path} is on bus ${dev.bus}, outside buses ${this.busRange[0]}..${this.busRange[1]}`);
    }
    if (iova % PAGE !== 0 || phys % PAGE !== 0 || !(len > 0) || iova + len > IOVA_LIMIT) {
      const what = `0x${len.toString(16)} bytes at IOVA 0x${iova.toString(16)} to 0x${phys.toString(16)}`;
      throw new UsageError(`${this.id}: cannot map ${what}: addresses must be page-aligned, the range non-empty and below 2^48`);
    }
    const ram = this.ctx.ram;
    const sid = dev.requesterId;
    const log2size = this.state.strtab_base_cfg & 0x3f;
    if (sid >= 2 ** log2size) {
      throw new UsageError(`${this.id}: StreamID ${hex4(sid)} of ${dev.path} is beyond the stream table (LOG2SIZE ${log2size})`);
    }
    const ste = Number(this.state.strtab_base & STRTAB_ADDR_MASK) + sid * STE_SIZE;
    const w0 = ram.readU32(ste);
    let root: number;
    if ((w0 & 1) === 1 && ((w0 >>> 1) & 7) === STE_CONFIG.S2_TRANS) {
      // The driver's own bookkeeping lives in guest memory: the STE it wrote (also after a restore).
      root = outputAddress(ram.readU32(ste + 24) & ~0xf, ram.readU32(ste + 28) & 0xfffff);
    } else {
      root = alloc.alloc(PAGE, PAGE);
      ram.writeU32(ste + 16, sid); // S2VMID
      ram.writeU32(ste + 20, STE_2_HI_S2CFG);
      ram.writeU32(ste + 24, root >>> 0); // S2TTB [51:4]
      ram.writeU32(ste + 28, Math.floor(root / 0x100000000));
      ram.writeU32(ste, 1 | (STE_CONFIG.S2_TRANS << 1)); // dword 0 last, V with it
    }
    for (let off = 0; off < len; off += PAGE) {
      const va = iova + off;
      let table = root;
      for (let level = 0; level < 3; level++) {
        const slot = table + (Math.floor(va / 2 ** (39 - 9 * level)) % 512) * 8;
        let lo = ram.readU32(slot);
        let hi = ram.readU32(slot + 4);
        if ((lo & DESC_VALID) === 0) {
          const next = alloc.alloc(PAGE, PAGE);
          lo = ((next >>> 0) | DESC_VALID | DESC_TABLE) >>> 0;
          hi = Math.floor(next / 0x100000000);
          ram.writeU32(slot + 4, hi);
          ram.writeU32(slot, lo);
        }
        table = outputAddress(lo & 0xfffff000, hi & 0xffff);
      }
      const slot = table + (Math.floor(va / PAGE) % 512) * 8;
      const out = phys + off;
      ram.writeU32(slot + 4, Math.floor(out / 0x100000000));
      ram.writeU32(slot, ((out >>> 0) | DESC_AF | S2AP_WRITE | S2AP_READ | DESC_TABLE | DESC_VALID) >>> 0);
    }
  }

  /** CFGI_ALL then CMD_SYNC: every cached STE is fetched again, under the requester IDs of now. */
  driverFlush(): void {
    this.rebuild();
  }
}

/** An address from its low 32 bits (already masked) and its high bits. */
function outputAddress(lo: number, hi: number): number {
  return hi * 0x100000000 + (lo >>> 0);
}

function hex4(n: number): string {
  return '0x' + n.toString(16).padStart(4, '0');
}
