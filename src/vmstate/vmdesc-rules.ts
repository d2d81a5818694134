/**
 * How a QEMU release describes device state in the VMDESCRIPTION (vmsd_desc_field_start and the save
 * loop of migration/vmstate.c). The bytes are the same in every release; only the description differs.
 *
 *   7.2    an array that is not compressed gives every element an "index"; a NULL element of an array of
 *          pointers is described with the field's own type, inside the array's description.
 *   10.0   (9.1.3, 9.2.1) the last element of an array that is not compressed has no "index" (each
 *          element is described as if the array started there); a NULL element is a one-byte field of
 *          type "nullptr", and each run of NULL or non-NULL elements is described on its own (a run of
 *          more than one is compressed as its field would be, a NULL run always).
 */

/** What a release writes differently in a device's description. */
export interface VmdescRules {
  /** The last element of an array that is not compressed carries "index" too (7.2; not from 9.1.3 on). */
  readonly indexLastElement: boolean;
  /** NULL elements of an array of pointers are described as type "nullptr", run by run (from 9.1.3 on). */
  readonly nullptrType: boolean;
}

/** QEMU 7.2's descriptions. */
export const VMDESC_RULES_7_2: VmdescRules = Object.freeze({ indexLastElement: true, nullptrType: false });

/** QEMU 10.0's descriptions (also 9.1.3 and 9.2.1). */
export const VMDESC_RULES_10_0: VmdescRules = Object.freeze({ indexLastElement: false, nullptrType: true });
