/**
 * Intel VT-d (a simplified DMA-remapping unit, saved as QEMU 7.2's "iommu-intel" section).
 *
 * Mirrors the VT-d specification where it matters for migration:
 *   - registers in the 560-byte register file `csr` (little-endian, QEMU keeps them there too):
 *     GCMD 0x18 (TE bit 31, SRTP bit 30), GSTS 0x1c (TES, RTPS), RTADDR 0x20, CCMD 0x28 (ICC bit 63);
 *   - a root table of 256 16-byte entries indexed by bus (bit 0 present, bits 63:12 context table);
 *   - context tables of 256 16-byte entries indexed by devfn (lo: bit 0 present, bits 3:2 translation type,
 *     bits 63:12 second-level page-table pointer; hi: bits 2:0 address width, bits 23:8 domain id);
 *   - 4-level second-level page tables, 512 8-byte entries per level (bit 0 read, bit 1 write, bits 51:12).
 * Simplified: no queued invalidation, interrupt remapping, fault recording or large pages.
 *
 * The per-device context cache is what migration order is about: it is rebuilt when the guest enables
 * translation or invalidates the context cache, and in post-load, from each device's requester ID as the
 * bridges' registers give it at that moment (QEMU's vtd_switch_address_space_all in vtd_post_load).
 */
import type { LoadContext } from '../vmstate/index.js';
import { defineVmsd } from '../vmstate/index.js';
import { DmaFault, forEachDeviceInScope, type BridgeToucher, type GuestAllocator, type IommuContext, type IommuModel } from './iommu.js';
import { DMAR_REG_SIZE, intelIommuFields, type IntelIommuState } from './layouts/intel-iommu.js';
import { MigPriority } from '../vmstate/index.js';
import type { PciFunction } from './pci.js';

/** Register offsets (VT-d spec, section 10.4). */
export const VTD_REG = { VER: 0x00, CAP: 0x08, ECAP: 0x10, GCMD: 0x18, GSTS: 0x1c, RTADDR: 0x20, CCMD: 0x28 } as const;
const GCMD_TE = 0x80000000;
const GCMD_SRTP = 0x40000000;
const CCMD_ICC_HI = 0x80000000; // bit 63, in the high dword
/** Context entry address width 2: 48-bit, 4-level tables. */
const AW_48 = 2;
const PAGE = 4096;

/** What the cache holds per device: the context it resolved, under the requester ID of that moment. */
interface CachedContext {
  readonly rid: number;
  readonly present: boolean;
  readonly slptptr: number;
  readonly domain: number;
}

export class VtdUnit implements IommuModel {
  readonly idstr = 'iommu-intel';
  readonly vmsd;
  readonly state: IntelIommuState;
  private cache = new Map<PciFunction, CachedContext>();
  private nextDomain = 1;

  constructor(
    readonly id: string,
    readonly busRange: readonly [number, number],
    private readonly ctx: IommuContext,
    touchBridges: BridgeToucher = () => undefined,
  ) {
    this.state = {
      root: 0n,
      intr_root: 0n,
      iq: 0n,
      intr_size: 0,
      iq_head: 0,
      iq_tail: 0,
      iq_size: 0,
      next_frcd_reg: 0,
      csr: new Array<number>(DMAR_REG_SIZE).fill(0),
      iq_last_desc_type: 0,
      dmar_enabled: false,
      qi_enabled: false,
      intr_enabled: false,
      intr_eime: false,
    };
    this.setReg32(VTD_REG.VER, 0x10);
    // CAP: MGAW 47 (bits 21:16), SAGAW 4-level (bit 10), ND 2 (bits 2:0).
    this.setReg32(VTD_REG.CAP, (47 << 16) | (1 << 10) | 2);
    this.vmsd = defineVmsd({
      name: 'iommu-intel',
      version: 1,
      priority: MigPriority.IOMMU,
      fields: intelIommuFields,
      postLoad: (_s, ctx) => this.rebuild(ctx, touchBridges),
    });
  }

  private reg32(off: number): number {
    const c = this.state.csr;
    return (c[off] | (c[off + 1] << 8) | (c[off + 2] << 16) | (c[off + 3] << 24)) >>> 0;
  }

  private setReg32(off: number, v: number): void {
    const c = this.state.csr;
    for (let i = 0; i < 4; i++) c[off + i] = (v >>> (8 * i)) & 0xff;
  }

  /** A 32-bit MMIO write, as the guest driver does it. */
  writeReg32(off: number, v: number): void {
    if (off === VTD_REG.GCMD) {
      let sts = this.reg32(VTD_REG.GSTS);
      if (v & GCMD_SRTP) {
        this.state.root = BigInt(this.reg32(VTD_REG.RTADDR)) | (BigInt(this.reg32(VTD_REG.RTADDR + 4)) << 32n);
        sts |= GCMD_SRTP;
      }
      this.state.dmar_enabled = (v & GCMD_TE) !== 0;
      sts = this.state.dmar_enabled ? sts | GCMD_TE : sts & ~GCMD_TE;
      this.setReg32(VTD_REG.GSTS, sts >>> 0);
      this.rebuild();
      return;
    }
    if (off === VTD_REG.CCMD + 4 && v & CCMD_ICC_HI) {
      // Context-cache invalidation: done at once, so ICC reads back clear.
      this.setReg32(off, v & ~CCMD_ICC_HI);
      this.rebuild();
      return;
    }
    this.setReg32(off, v);
  }

  /** Re-reads the context of every device on this unit's buses, under its requester ID of this moment. */
  private rebuild(load?: LoadContext, touch?: BridgeToucher): void {
    this.cache = new Map();
    if (!this.state.dmar_enabled) return;
    const ram = this.ctx.ram;
    const root = Number(this.state.root);
    const cache = this.cache;
    forEachDeviceInScope(
      this,
      this.ctx.busGroups(),
      (dev, rid) => {
        const rootLo = ram.readU64(root + (rid >> 8) * 16);
        if ((rootLo & 1) === 0) {
          cache.set(dev, { rid, present: false, slptptr: 0, domain: 0 });
          return;
        }
        const ce = pageBase(rootLo) + (rid & 0xff) * 16;
        const lo = ram.readU64(ce);
        const hi = ram.readU64(ce + 8);
        cache.set(dev, { rid, present: (lo & 1) === 1, slptptr: pageBase(lo), domain: Math.floor(hi / 256) & 0xffff });
      },
      load,
      touch,
    );
  }

  translate(dev: PciFunction, iova: number, write: boolean): number {
    if (!this.state.dmar_enabled) return iova; // translation off: DMA addresses are physical
    const c = this.cache.get(dev);
    if (!c) throw new DmaFault(dev.path, dev.requesterId, iova, `no context cached for this device in ${this.id}`);
    if (!c.present) throw new DmaFault(dev.path, c.rid, iova, `context entry for RID ${hex4(c.rid)} not present`);
    let table = c.slptptr;
    const ram = this.ctx.ram;
    for (let level = 3; level >= 0; level--) {
      const idx = Math.floor(iova / 2 ** (12 + 9 * level)) % 512;
      const e = ram.readU64(table + idx * 8);
      const needed = level === 0 && write ? 2 : 1;
      if ((e & needed) === 0) throw new DmaFault(dev.path, c.rid, iova, `no ${write ? 'write' : 'read'} mapping in domain ${c.domain}`);
      table = pageBase(e);
    }
    return table + (iova % PAGE);
  }

  driverInit(alloc: GuestAllocator): void {
    const root = alloc.alloc(PAGE, PAGE);
    this.writeReg32(VTD_REG.RTADDR, root >>> 0);
    this.writeReg32(VTD_REG.RTADDR + 4, Math.floor(root / 0x100000000));
    this.writeReg32(VTD_REG.GCMD, GCMD_SRTP);
    this.writeReg32(VTD_REG.GCMD, GCMD_TE);
  }

  driverMap(alloc: GuestAllocator, dev: PciFunction, iova: number, phys: number, len: number): void {
    const ram = this.ctx.ram;
    const root = Number(this.state.root);
    const rid = dev.requesterId;
    const re = root + (rid >> 8) * 16;
    let rootLo = ram.readU64(re);
    if ((rootLo & 1) === 0) {
      rootLo = alloc.alloc(PAGE, PAGE) + 1;
      ram.writeU64(re, rootLo);
    }
    const ce = pageBase(rootLo) + (rid & 0xff) * 16;
    let lo = ram.readU64(ce);
    if ((lo & 1) === 0) {
      lo = alloc.alloc(PAGE, PAGE) + 1; // present, translation type 0 (second-level tables)
      ram.writeU64(ce + 8, AW_48 + this.nextDomain++ * 256);
      ram.writeU64(ce, lo);
    }
    for (let off = 0; off < len; off += PAGE) {
      let table = pageBase(lo);
      for (let level = 3; level > 0; level--) {
        const slot = table + (Math.floor((iova + off) / 2 ** (12 + 9 * level)) % 512) * 8;
        let e = ram.readU64(slot);
        if ((e & 1) === 0) {
          e = alloc.alloc(PAGE, PAGE) + 3;
          ram.writeU64(slot, e);
        }
        table = pageBase(e);
      }
      ram.writeU64(table + (Math.floor((iova + off) / PAGE) % 512) * 8, phys + off + 3);
    }
  }

  driverFlush(): void {
    this.writeReg32(VTD_REG.CCMD + 4, CCMD_ICC_HI);
  }
}

function pageBase(entry: number): number {
  // Bits 51:12; entries stay below 2^53, so number arithmetic is exact.
  return entry - (entry % PAGE) - Math.floor(entry / 2 ** 52) * 2 ** 52;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}
