// The published package, as a user gets it: `npm pack`, installed into a folder of its own. It offers
// exactly six entry points, each exactly the names listed here, with types that compile; a name not
// listed (an internal) is reachable neither by import nor by a deep path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './support/paths.js';

interface EntryPoint {
  /** Names a module has at run time: classes, functions, constants. */
  readonly values: readonly string[];
  /** Names only the types have. */
  readonly types: readonly string[];
  /** Names inside vmstate that must not be exported here. */
  readonly internals: readonly string[];
}

const ENTRY_POINTS: Readonly<Record<string, EntryPoint>> = {
  vmstate: {
    values: [
      'ByteReader', 'ByteWriter', 'CONFIG_SUBSECTION', 'ChunkedSource', 'DEFAULT_DIALECT', 'FILE_MAGIC', 'FILE_VERSION', 'GuestMemoryError', 'GuestRam', 'INT_CODECS',
      'IoError', 'LoadError', 'LoadOrderError', 'MigCommand', 'MigPriority', 'PRIORITY_REASONS', 'PlanError', 'QEMU_BRIDGE_VMSDS', 'QEMU_DIALECTS', 'QEMU_IOMMU_VMSDS',
      'QEMU_ORDER_RULES', 'QEMU_PRIORITY_BY_VMSD', 'QEMU_RELEASES', 'QemuJsonWriter', 'RamDecoder', 'RamEncoder', 'RamFlag', 'RamHandler', 'RecordType', 'SaveError',
      'SaveRegistry', 'SectionError', 'StreamFormatError', 'StreamSaver', 'StreamTruncatedError', 'UsageError', 'VmstateError', 'array', 'bool',
      'buffer', 'checkOrder', 'custom', 'decodeCommand', 'defineVmsd', 'describeCommand', 'i16', 'i32', 'i32Equal', 'i32Le', 'i64', 'i8', 'isPciDevice', 'loadSnapshot', 'loadState',
      'planOrder', 'pointerArray', 'priorityName', 'pullFromIterable', 'pullFromReadable', 'qemuOrderRules', 'qemuReleaseFor', 'readFooter', 'readHeader', 'readTopRecord', 'readVmdesc', 'saveSnapshot',
      'saveState', 'struct', 'timer', 'u16', 'u16Array', 'u16Equal', 'u32', 'u32Array', 'u32Equal', 'u64', 'u64Array', 'u64Equal', 'u8', 'u8Array',
      'u8Equal', 'unused', 'varray', 'vbuffer', 'walkStream', 'writeCommand', 'writeConfiguration', 'writeEof', 'writeFooter', 'writeHeader',
      'writeSectionHeader', 'writeVmdesc',
    ],
    types: [
      'AnyVmsd', 'BoolField', 'BufferField', 'ChunkedSourceOptions', 'CommandRecord', 'ConfigSubsection', 'ConfigurationRecord', 'Count',
      'CustomField', 'DecodedCommand', 'Dependency', 'EntryInfo', 'EntryRef', 'EntrySelector', 'Field', 'FieldOptions', 'FullSectionHeader', 'HookState', 'IntCodec',
      'IntCodecName', 'IntField', 'IterativeHandler', 'LoadContext', 'LoadResult', 'LoadSnapshotOptions', 'MappedBlock', 'OrderRule',
      'OrderViolation', 'PlanEdge', 'PlanNode', 'PlanOptions', 'PlanResult', 'PullSource', 'QemuDialect', 'QemuOrderRules', 'QemuPriorityName', 'QemuRelease', 'RamBlock', 'RamBlockInfo', 'RamHandlerOptions',
      'RamLayout', 'RamSink', 'RamStats', 'RegisterOptions', 'SaveEntry', 'SavePlan', 'SaveSnapshotOptions', 'SectionBodyDecoder', 'SectionContext',
      'SectionHeader', 'SectionKind', 'ShortSectionHeader', 'SnapshotSink', 'StateOf', 'StateOfFields', 'StreamPosition', 'StreamVisitor',
      'StructField', 'TimerField', 'TopRecord', 'UnusedField', 'ValueOf', 'VmdescRules', 'Vmsd', 'VmsdSpec', 'VmstateErrorCode',
    ],
    internals: ['selectIndices', 'resolveDependencies', 'findVmdescTrailer', 'MAX_VMDESC_BYTES', 'checkIncomingVersion', 'forEachNonZeroRun', 'joinPath', 'analyzeStream', 'Machine', 'CompiledField'],
  },
  'vmstate/analyze': {
    values: [
      'ANALYZE_SCRIPTS', 'DEFAULT_SCRIPT', 'RAM_IDSTR', 'SCRIPT_10_0', 'SCRIPT_7_2', 'analyzeStream', 'analyzeStreamJson', 'applyEdit', 'compareDumps', 'compareStreamToDump', 'compareStreams', 'decodeStream', 'decodeStruct', 'encodeStruct',
      'explainError', 'formatAnalysis', 'formatCompat', 'formatDumpCompat', 'formatExplanation', 'formatIdentity', 'formatSectionTable', 'hexBytes', 'identifyStream', 'identityWatcher', 'listRecords', 'listSections', 'openStreamFile', 'parseEdit', 'parseVmdesc', 'parseVmstateDump', 'pyDumps', 'readValueTree', 'readVmdescFromFile',
      'profileStream', 'profileStreamFile', 'renderStruct', 'requireVmdesc', 'rewriteStream',
      'asksForChanges', 'parseInstanceMapping', 'parseReorder', 'ramLayoutOf', 'rewriteDevicePhase', 'sectionMatches',
    ],
    types: [
      'AnalyzeOptions', 'AnalyzeScript', 'ByteSink', 'CompatFinding', 'CompatKind', 'CompatReport', 'CompatSeverity', 'DecodedStreamHandler', 'DumpCompatReport', 'DumpDescription', 'DumpEntry', 'DumpField', 'ExplainedLine', 'Explanation', 'FieldEdit', 'FieldEntry', 'FieldValue', 'FoundVmdesc', 'IdentityWatcher', 'LeafRule', 'PyJson',
      'OtherRecordRow', 'RecordRow', 'RewriteResult', 'SectionRow', 'StopPlace', 'DevicePhaseEdits', 'DevicePhaseResult', 'InstanceMapping', 'PhaseSection', 'ReorderRequest', 'StreamFile', 'StreamIdentity', 'StreamProfile', 'Told', 'VersionMarker', 'StructPlan', 'StructValue', 'SubsectionEntry', 'Vmdesc', 'VmdescDevice', 'VmdescField', 'VmdescStruct', 'VmstateDump',
    ],
    internals: ['structPlan', 'readStruct', 'skipStruct', 'writeBodyJson', 'writeDeviceJson', 'PyJsonWriter', 'BodySink'],
  },
  'vmstate/machine': {
    values: [
      'DirtyingWorkload', 'DmaEngine', 'DmaFault', 'DmaStatus', 'MAX_DIRTY_RATE', 'Machine', 'PCI_IDS', 'PciBridge', 'PciFunction', 'SMMU_REG', 'Smmuv3Unit', 'VTD_REG',
      'VtdUnit', 'defaultMachineType', 'dmaEngineVmsd', 'enumerateBuses', 'globalStateVmsd', 'intelIommuVmsd', 'largeMachine', 'loadMachineDescription', 'msixVmsd',
      'newGlobalState', 'newPciDeviceState', 'parseMachineDescription', 'pciBusVmsd', 'pciDeviceVmsd', 'pcieAerLogVmsd', 'pciePciBridgeVmsd',
      'pcieRootPortVmsd', 'smmuv3QueueVmsd', 'smmuv3Vmsd', 'xio3130DownstreamVmsd', 'xio3130UpstreamVmsd',
    ],
    types: [
      'DeviceNode', 'DmaEngineState', 'DmaPort', 'DmaResult', 'GlobalState', 'GuestAllocator', 'IntelIommuState', 'IommuModel', 'MachineDescription',
      'MachineOptions', 'PciDeviceState', 'PciKind', 'PcieRootPortState', 'Smmuv3Options', 'Smmuv3QueueState', 'Smmuv3State',
    ],
    internals: ['CONTROL_BLOCK', 'SRC_IOVA', 'forEachDeviceInScope', 'buildPciTree', 'countBuses', 'BridgeToucher'],
  },
  'vmstate/migration': {
    values: [
      'AuthzList', 'AuthzSimple', 'DEFAULT_PARAMETERS', 'IncomingMigration', 'MIGRATION_TRANSITIONS', 'MigrationError', 'MigrationStateMachine',
      'OutgoingMigration', 'ProxyError', 'RpMessage', 'SourceReturnPath', 'TLS_FILES', 'TlsCredsX509', 'canTransition', 'connectOutgoing', 'distinguishedName',
      'encodePong', 'encodeShut', 'formatMigrationUri', 'globMatches', 'isFinal', 'listenAt', 'listenIncoming', 'parseMigrationUri',
      'readReturnPathMessage', 'runProxy',
    ],
    types: [
      'Authz', 'AuthzPolicy', 'AuthzRule', 'ByteTransport', 'IncomingConnection', 'IncomingEndpoint', 'IncomingOptions', 'MigratableVm',
      'MigrationCapabilities', 'MigrationParameters', 'MigrationPhase', 'MigrationStatus', 'MigrationUri', 'OutgoingTls', 'ProxyOptions', 'ProxyResult', 'ProxyWatch', 'LiveStreamStats', 'ReturnPathMessage',
      'TlsClientOptions', 'TlsCredsX509Options', 'TlsEndpoint', 'TlsServerOptions',
    ],
    internals: ['warmUp', 'parseSocketAddress'],
  },
  'vmstate/qmp': {
    values: [
      'MAX_REQUEST_BYTES', 'OBJECT_PROPERTIES', 'QMP_VERSION', 'QmpClient', 'QmpError', 'checkArguments', 'formatQemuJson', 'formatSocketAddress', 'objectAdd',
      'parseQmpAddress', 'qmpCommands', 'startQmpServer',
    ],
    types: [
      'ArgSpec', 'ArgType', 'MigrationCapabilityStatus', 'QmpClientOptions', 'QmpCommand', 'QmpErrorClass', 'QmpEvent', 'QmpGreeting', 'QmpServer',
      'QmpServerOptions', 'SocketAddress', 'VmControl',
    ],
    internals: ['QmpSession', 'RequestSplitter', 'errorReply'],
  },
  'vmstate/v86': {
    values: ['V86_DEVICES', 'V86_MACHINE_TYPE', 'V86_RAM_BLOCK', 'V86_STATE_MAGIC', 'V86_STATE_VERSION', 'float64', 'readV86State', 'v86Entries', 'writeV86State'],
    types: ['V86Device', 'V86Entries', 'V86Map', 'V86TypedArray', 'V86Value'],
    internals: ['encodeV86Value', 'decodeV86Value', 'wasmStruct', 'v86Device'],
  },
};

function run(command: string, args: readonly string[], cwd: string): string {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${command} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The TypeScript a user would write: every listed name imported, and each internal refused. */
function typeCheckSource(): string {
  const lines: string[] = [];
  for (const [entry, e] of Object.entries(ENTRY_POINTS)) {
    lines.push(`import { ${e.values.join(', ')} } from '${entry}';`);
    lines.push(`import type { ${e.types.join(', ')} } from '${entry}';`);
    for (const name of e.internals) lines.push(`// @ts-expect-error ${name} is internal`, `import { ${name} as _${entry.replace(/\W/g, '_')}_${name} } from '${entry}';`);
  }
  return lines.join('\n') + '\n';
}

test('the packed package offers six entry points, each exactly its list of names, with types that compile', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmstate-pack-'));
  try {
    const tarball = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], repoRoot).trim().split('\n').at(-1) as string;
    const app = path.join(dir, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    run('npm', ['install', path.join(dir, tarball), '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--silent'], app);

    // At run time: each entry point's names, exactly; a deep path into the package is refused.
    fs.writeFileSync(
      path.join(app, 'names.mjs'),
      `const out = {};
for (const e of ${JSON.stringify(Object.keys(ENTRY_POINTS))}) out[e] = Object.keys(await import(e)).sort();
try { await import('vmstate/dist/src/savevm/index.js'); out.deep = 'imported'; } catch (e) { out.deep = e.code; }
console.log(JSON.stringify(out));
`,
    );
    const names = JSON.parse(run(process.execPath, ['names.mjs'], app)) as Record<string, string[] | string>;
    for (const [entry, e] of Object.entries(ENTRY_POINTS)) assert.deepEqual(names[entry], [...e.values].sort(), `${entry}: the names at run time`);
    assert.equal(names.deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED');

    // Types: every listed name compiles, each internal is refused (an unused @ts-expect-error fails).
    fs.writeFileSync(path.join(app, 'check.ts'), typeCheckSource());
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['check.ts'],
      }),
    );
    run(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
