/**
 * The state of each v86 device (npm v86 0.5.462), described: slot indices and names are those of the
 * device's get_state() in v86's source (src/rtc.js, src/pit.js, ...), the wasm struct layouts those of
 * src/rust/cpu/apic.rs and ioapic.rs (#[repr(C)]). Each description is version 1: v86 versions its
 * whole state file (state version 6), not its devices. Links (links.ts) say what each device needs of
 * the interrupt controllers and the PCI host; the PCI functions are v86's (ne2k 00:05.0, ACPI 00:07.0,
 * VGA 00:12.0, IDE 00:1e.0), the fixed IRQs its ISA devices' (PIT 0, keyboard 1 and mouse 12, FDC 6,
 * RTC 8, ACPI's SCI 9).
 */
import { APIC_IDSTR, pciFunction, raisesIrqs } from './links.js';
import { anyValue, byte, flag, nested, num, optional, text, typed, v86Device, wasmStruct, type Slot, type V86Device } from './slots.js';

/** `names` as consecutive number slots from `first` on. */
function nums(first: number, names: readonly string[]): Slot[] {
  return names.map((n, i) => num(first + i, n));
}

/** The CPU's own registers: CPU.get_state() without the devices it nests (src/cpu.js). */
export const cpuDevice = v86Device('v86-cpu', 1, 92, [
  num(0, 'memory_size'),
  typed(1, 'segment_is_null_and_access', 'Uint8Array', 16),
  typed(2, 'segment_offsets', 'Int32Array', 8),
  typed(3, 'segment_limits', 'Uint32Array', 8),
  ...nums(4, ['protected_mode', 'idtr_offset', 'idtr_size', 'gdtr_offset', 'gdtr_size']),
  typed(10, 'cr', 'Int32Array', 8),
  num(11, 'cpl'),
  num(13, 'is_32'),
  ...nums(16, ['stack_size_32', 'in_hlt', 'last_virt_eip', 'eip_phys']),
  ...nums(22, ['sysenter_cs', 'sysenter_eip', 'sysenter_esp', 'prefixes', 'flags', 'flags_changed', 'last_op1']),
  num(30, 'last_op_size'),
  num(37, 'instruction_pointer'),
  num(38, 'previous_ip'),
  typed(39, 'reg32', 'Int32Array', 8),
  typed(40, 'sreg', 'Uint16Array', 8),
  typed(41, 'dreg', 'Int32Array', 8),
  typed(42, 'reg_pdpte', 'Int32Array', 8),
  typed(43, 'current_tsc', 'Uint32Array', 2),
  anyValue(62, 'fw_value'),
  num(64, 'tss_size_32'),
  typed(66, 'reg_xmm32s', 'Int32Array', 32),
  typed(67, 'fpu_st', 'Int32Array', 32),
  ...nums(68, ['fpu_stack_empty', 'fpu_stack_ptr', 'fpu_control_word', 'fpu_ip', 'fpu_ip_selector', 'fpu_dp', 'fpu_dp_selector', 'fpu_opcode']),
  typed(86, 'last_result', 'Int32Array', 1),
  typed(87, 'fpu_status_word', 'Uint16Array', 1),
  typed(88, 'mxcsr', 'Int32Array', 1),
]);

/** The local APIC (src/rust/cpu/apic.rs, struct Apic, 184 bytes). */
export const apicDevice = wasmStruct('v86-apic', 1, 184, [
  { name: 'apic_id', offset: 0, type: 'u32' },
  { name: 'timer_divider', offset: 4, type: 'u32' },
  { name: 'timer_divider_shift', offset: 8, type: 'u32' },
  { name: 'timer_initial_count', offset: 12, type: 'u32' },
  { name: 'timer_current_count', offset: 16, type: 'u32' },
  { name: 'timer_last_tick', offset: 24, type: 'f64' },
  { name: 'lvt_timer', offset: 32, type: 'u32' },
  { name: 'lvt_perf_counter', offset: 36, type: 'u32' },
  { name: 'lvt_int0', offset: 40, type: 'u32' },
  { name: 'lvt_int1', offset: 44, type: 'u32' },
  { name: 'lvt_error', offset: 48, type: 'u32' },
  { name: 'tpr', offset: 52, type: 'u32' },
  { name: 'icr0', offset: 56, type: 'u32' },
  { name: 'icr1', offset: 60, type: 'u32' },
  { name: 'irr', offset: 64, type: 'u32x8' },
  { name: 'isr', offset: 96, type: 'u32x8' },
  { name: 'tmr', offset: 128, type: 'u32x8' },
  { name: 'spurious_vector', offset: 160, type: 'u32' },
  { name: 'destination_format', offset: 164, type: 'u32' },
  { name: 'local_destination', offset: 168, type: 'u32' },
  { name: 'error', offset: 172, type: 'u32' },
  { name: 'read_error', offset: 176, type: 'u32' },
  { name: 'lvt_thermal_sensor', offset: 180, type: 'u32' },
]);

/** The IOAPIC (src/rust/cpu/ioapic.rs, struct Ioapic, 24 redirection entries, 208 bytes). */
export const ioapicDevice = wasmStruct('v86-ioapic', 1, 208, [
  { name: 'ioredtbl_config', offset: 0, type: 'u32x24' },
  { name: 'ioredtbl_destination', offset: 96, type: 'u32x24' },
  { name: 'ioregsel', offset: 192, type: 'u32' },
  { name: 'ioapic_id', offset: 196, type: 'u32' },
  { name: 'irr', offset: 200, type: 'u32' },
  { name: 'irq_value', offset: 204, type: 'u32' },
], [{ idstr: APIC_IDSTR, reason: 'the IOAPIC delivers its interrupts to the local APIC' }]);

/**
 * One 8259 PIC: the 13 bytes of struct Pic0 (src/rust/cpu/pic.rs) as CPU.get_state_pic lists them.
 * The master's index 5 holds the slave's array (the slave's own is null), so each is a section of its own.
 */
const PIC_BYTES = ['irq_mask', 'irq_map', 'isr', 'irr', 'is_master', null, 'expect_icw4', 'state', 'read_isr', 'auto_eoi', 'elcr', 'irq_value', 'special_mask_mode'] as const;
export const picDevice = v86Device(
  'v86-pic',
  1,
  13,
  PIC_BYTES.flatMap((n, i) => (n === null ? [] : [byte(i, n)])),
);

export const rtcDevice = v86Device('v86-rtc', 1, 15, [
  num(0, 'cmos_index'),
  typed(1, 'cmos_data', 'Uint8Array', 128),
  ...nums(2, ['rtc_time', 'last_update', 'next_interrupt', 'next_interrupt_alarm']),
  flag(6, 'periodic_interrupt'),
  ...nums(7, ['periodic_interrupt_time', 'cmos_a', 'cmos_b', 'cmos_c', 'nmi_disabled']),
  flag(12, 'update_interrupt'),
  num(13, 'update_interrupt_time'),
  num(14, 'cmos_diag_status'),
], [raisesIrqs('v86-rtc', () => [8])]);

/** The PCI host: config space of each of 256 device slots (null where none), then the address latch. */
export const pciDevice = v86Device('v86-pci', 1, 260, [
  ...Array.from({ length: 256 }, (_, i) => optional(typed(i, `device_space_${i.toString(16).padStart(2, '0')}`, 'Int32Array', 64))),
  typed(256, 'pci_addr', 'Uint8Array', 4),
  typed(257, 'pci_value', 'Uint8Array', 4),
  typed(258, 'pci_response', 'Uint8Array', 4),
  typed(259, 'pci_status', 'Uint8Array', 4),
]);

/** The 8237 DMA controllers (src/dma.js). */
export const dmaDevice = v86Device('v86-dma', 1, 9, [
  typed(0, 'channel_page', 'Uint8Array', 8),
  typed(1, 'channel_pagehi', 'Uint8Array', 8),
  typed(2, 'channel_addr', 'Uint16Array', 8),
  typed(3, 'channel_addr_init', 'Uint16Array', 8),
  typed(4, 'channel_count', 'Uint16Array', 8),
  typed(5, 'channel_count_init', 'Uint16Array', 8),
  typed(6, 'channel_mask', 'Uint8Array', 8),
  typed(7, 'channel_mode', 'Uint8Array', 8),
  num(8, 'lsb_msb_flipflop'),
]);

/** ACPI power management (src/acpi.js). */
export const acpiDevice = v86Device('v86-acpi', 1, 4, [...nums(0, ['status', 'pm1_status', 'pm1_enable']), typed(3, 'gpe', 'Uint8Array', 4)], [
  pciFunction('v86-acpi', 0x38),
  raisesIrqs('v86-acpi', () => [9]), // SCI
]);

/** VGA with Bochs VBE (src/vga.js); its memories are as large as v86 was configured with. */
export const vgaDevice = v86Device('v86-vga', 1, 65, [
  ...nums(0, ['vga_memory_size', 'cursor_address', 'cursor_scanline_start', 'cursor_scanline_end', 'max_cols', 'max_rows']),
  typed(6, 'vga_memory', 'Uint8Array'),
  num(7, 'dac_state'),
  num(8, 'start_address'),
  flag(9, 'graphical_mode'),
  typed(10, 'vga256_palette', 'Int32Array', 256),
  ...nums(11, ['latch_dword', 'color_compare', 'color_dont_care', 'miscellaneous_graphics_register', 'svga_width', 'svga_height', 'crtc_mode']),
  flag(18, 'svga_enabled'),
  ...nums(19, ['svga_bpp', 'svga_bank_offset', 'svga_offset', 'index_crtc', 'dac_color_index_write', 'dac_color_index_read']),
  typed(25, 'dac_map', 'Uint8Array', 16),
  ...nums(26, ['sequencer_index', 'plane_write_bm', 'sequencer_memory_mode', 'graphics_index', 'plane_read', 'planar_mode', 'planar_rotate_reg', 'planar_bitmap', 'max_scan_line', 'miscellaneous_output_register', 'port_3DA_value', 'dispi_index', 'dispi_enable_value']),
  typed(39, 'svga_memory', 'Uint8Array'),
  ...nums(41, ['attribute_controller_index', 'offset_register', 'planar_setreset', 'planar_setreset_enable', 'start_address_latched']),
  typed(46, 'crtc', 'Uint8Array', 25),
  // Index 53 repeats offset_register: v86 saves it twice.
  ...nums(47, ['horizontal_display_enable_end', 'horizontal_blank_start', 'vertical_display_enable_end', 'vertical_blank_start', 'underline_location_register', 'preset_row_scan', 'offset_register_again', 'palette_source', 'attribute_mode', 'color_plane_enable', 'horizontal_panning', 'color_select', 'clocking_mode', 'line_compare']),
  typed(61, 'pixel_buffer', 'Uint8Array'),
  num(62, 'dac_mask'),
  num(63, 'character_map_select'),
  flag(64, 'font_page_ab_enabled'),
], [pciFunction('v86-vga', 0x90)]);

/** The 8042 keyboard controller with keyboard and mouse (src/ps2.js). */
export const ps2Device = v86Device('v86-ps2', 1, 28, [
  flag(0, 'enable_mouse_stream'),
  flag(1, 'use_mouse'),
  flag(2, 'have_mouse'),
  ...nums(3, ['mouse_delta_x', 'mouse_delta_y', 'mouse_clicks']),
  ...['have_keyboard', 'enable_keyboard_stream', 'next_is_mouse_command', 'next_read_sample', 'next_read_led', 'next_handle_scan_code_set', 'next_read_rate', 'next_read_resolution'].map((n, i) => flag(6 + i, n)),
  ...nums(15, ['last_port60_byte', 'sample_rate', 'resolution']),
  flag(18, 'scaling2'),
  num(20, 'command_register'),
  flag(21, 'read_output_register'),
  flag(22, 'read_command_register'),
  num(23, 'controller_output_port'),
  flag(24, 'read_controller_output_port'),
  num(25, 'mouse_id'),
  num(26, 'mouse_detect_state'),
  flag(27, 'mouse_reset_workaround'),
], [raisesIrqs('v86-ps2', () => [1, 12])]);

/** A 16550 UART (src/uart.js); v86 has four, each a section of this description. */
export const uartDevice = v86Device(
  'v86-uart',
  1,
  11,
  nums(0, ['ints', 'baud_rate', 'line_control', 'lsr', 'fifo_control', 'ier', 'iir', 'modem_control', 'modem_status', 'scratch_register', 'irq']),
  [raisesIrqs('v86-uart', (s) => [s.irq])],
);

/** A floppy drive (src/floppy.js FloppyDrive); its buffer is the disk image's own state, or null. */
const floppyDrive = v86Device('v86-floppy-drive', 1, 11, [
  ...nums(0, ['drive_type', 'max_track', 'max_head', 'max_sect', 'curr_track', 'curr_head', 'curr_sect', 'perpendicular']),
  flag(8, 'read_only'),
  flag(9, 'media_changed'),
  anyValue(10, 'buffer'),
]);

/** The floppy controller (src/floppy.js) and its two drives. */
export const fdcDevice = v86Device('v86-fdc', 1, 46, [
  ...nums(19, ['sra', 'srb', 'dor', 'tdr', 'msr', 'dsr', 'cmd_phase', 'cmd_code', 'cmd_flags']),
  typed(28, 'cmd_buffer', 'Uint8Array', 17),
  num(29, 'cmd_cursor'),
  num(30, 'cmd_remaining'),
  typed(31, 'response_data', 'Uint8Array', 15),
  ...nums(32, ['response_cursor', 'response_length', 'status0', 'status1', 'curr_drive_no', 'reset_sense_int_count']),
  flag(38, 'locked'),
  ...nums(39, ['step_rate_interval', 'head_load_time', 'fdc_config', 'precomp_trk', 'eot']),
  nested(44, 'drive0', floppyDrive),
  nested(45, 'drive1', floppyDrive),
], [raisesIrqs('v86-fdc', () => [6])]);

/** One IDE drive (src/ide.js IDEInterface); indices 5 to 8 are zeros v86 still writes. */
const ideInterface = v86Device('v86-ide-interface', 1, 29, [
  ...nums(0, ['sector_count_reg', 'cylinder_count', 'lba_high_reg', 'lba_mid_reg', 'data_pointer', 'zero_5', 'zero_6', 'zero_7', 'zero_8', 'device_reg', 'error_reg', 'head', 'head_count']),
  anyValue(13, 'is_atapi'), // true, false, or never set (null) on a channel's empty slot
  num(14, 'is_lba'),
  num(15, 'features_reg'),
  typed(16, 'data', 'Uint8Array'),
  ...nums(17, ['data_length', 'lba_low_reg', 'sector_count', 'sector_size', 'sectors_per_drq', 'sectors_per_track', 'status_reg', 'write_dest', 'current_command', 'data_end', 'current_atapi_command']),
  anyValue(28, 'buffer'),
]);

/** One IDE channel (src/ide.js IDEChannel) with its master and slave drive. */
const ideChannel = v86Device('v86-ide-channel', 1, 13, [
  nested(0, 'master', ideInterface),
  nested(1, 'slave', ideInterface),
  num(2, 'command_base'),
  num(3, 'irq'),
  num(5, 'control_base'),
  text(7, 'name'),
  ...nums(8, ['device_control_reg', 'prdt_addr', 'dma_status']),
  flag(11, 'current_is_master'),
  num(12, 'dma_command'),
]);

/** The IDE controller (src/ide.js IDEController): a primary and a secondary channel, either absent. */
export const ideDevice = v86Device('v86-ide', 1, 2, [optional(nested(0, 'primary', ideChannel)), optional(nested(1, 'secondary', ideChannel))], [
  pciFunction('v86-ide', 0xf0),
  raisesIrqs('v86-ide', (s) => (['primary', 'secondary'] as const).flatMap((c) => (s[`${c}_present`] === true ? [(s[c] as Record<string, unknown>).irq] : []))),
]);

/** The 8254 PIT (src/pit.js): three counters. */
export const pitDevice = v86Device('v86-pit', 1, 9, [
  typed(0, 'counter_next_low', 'Uint8Array', 4),
  typed(1, 'counter_enabled', 'Uint8Array', 4),
  typed(2, 'counter_mode', 'Uint8Array', 4),
  typed(3, 'counter_read_mode', 'Uint8Array', 4),
  typed(4, 'counter_latch', 'Uint8Array', 4),
  typed(5, 'counter_latch_value', 'Uint16Array', 3),
  typed(6, 'counter_reload', 'Uint16Array', 3),
  typed(7, 'counter_start_time', 'Float64Array', 3),
  typed(8, 'counter_start_value', 'Uint16Array', 3),
], [raisesIrqs('v86-pit', () => [0])]);

/** The NE2000 network card (src/ne2k.js). */
export const ne2kDevice = v86Device('v86-ne2k', 1, 17, [
  ...nums(0, ['isr', 'imr', 'cr', 'dcfg', 'rcnt', 'tcnt', 'tpsr', 'rsar', 'pstart', 'curpg', 'boundary', 'pstop', 'rxcr', 'txcr', 'tsr']),
  typed(15, 'mac', 'Uint8Array', 6),
  typed(16, 'memory', 'Uint8Array'),
], [pciFunction('v86-ne2k', 0x28)]);

/** The Sound Blaster 16 (src/sb16.js). */
export const sb16Device = v86Device('v86-sb16', 1, 36, [
  ...nums(2, ['read_buffer_lastvalue', 'command', 'command_size', 'mixer_current_address']),
  typed(6, 'mixer_registers', 'Uint8Array', 256),
  flag(7, 'dummy_speaker_enabled'),
  num(8, 'test_register'),
  ...['dsp_highspeed', 'dsp_stereo', 'dsp_16bit', 'dsp_signed'].map((n, i) => flag(9 + i, n)),
  ...nums(15, ['dma_sample_count', 'dma_bytes_count', 'dma_bytes_left', 'dma_bytes_block', 'dma_irq', 'dma_channel', 'dma_channel_8bit', 'dma_channel_16bit']),
  flag(23, 'dma_autoinit'),
  typed(24, 'dma_buffer_uint8', 'Uint8Array'),
  flag(25, 'dma_waiting_transfer'),
  flag(26, 'dma_paused'),
  ...nums(27, ['sampling_rate', 'bytes_per_sample', 'e2_value', 'e2_count']),
  typed(31, 'asp_registers', 'Uint8Array', 256),
  anyValue(33, 'mpu_read_buffer_last_value'), // never set until the MPU is read
  num(34, 'irq'),
  typed(35, 'irq_triggered', 'Uint8Array', 16),
], [raisesIrqs('v86-sb16', (s) => [s.irq])]);

/** The VMware mouse backdoor (src/vmware.js). */
export const vmwareMouseDevice = v86Device('v86-vmware-mouse', 1, 2, [flag(0, 'enabled'), flag(1, 'absolute')]);

/** A parallel port (src/parallel.js); status_latched is a number or never set. */
export const parallelDevice = v86Device('v86-parallel', 1, 4, [...nums(0, ['data', 'status', 'control']), anyValue(3, 'status_latched')]);

/** Every description, for tools that list them. */
export const V86_DEVICES: readonly V86Device[] = [cpuDevice, apicDevice, ioapicDevice, picDevice, rtcDevice, pciDevice, dmaDevice, acpiDevice, vgaDevice, ps2Device, uartDevice, fdcDevice, ideDevice, pitDevice, ne2kDevice, sb16Device, vmwareMouseDevice, parallelDevice];
