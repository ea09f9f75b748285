import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type {
  ServerDuplexStream,
  ServiceDefinition,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { Status } from '../wire/grpc-status.ts';
import {
  LENGTH_DELIMITED,
  lengthDelimitedField,
  readFields,
  varintField,
} from '../wire/protobuf.ts';

/**
 * gRPC server reflection (grpc/reflection v1 and v1alpha, the same messages
 * under two package names) over the compiled descriptors of proto/: the
 * FileDescriptorSet that `npm run proto` builds with buf, committed, and
 * checked against the .proto files by a test. The descriptors are served
 * byte for byte as the compiler wrote them (map entries, fully qualified
 * type names, proto3 optional and comments included), never rebuilt.
 */

export const DESCRIPTOR_SET_FILE = fileURLToPath(
  new URL('../../proto/descriptor-set.binpb', import.meta.url),
);

interface FileDescriptor {
  readonly name: string;
  readonly bytes: Buffer;
  readonly dependencies: readonly string[];
}

/** One request's reply: the oneof field number of ServerReflectionResponse and its message. */
type Reply = readonly [number, Buffer];

const FILE_DESCRIPTOR_RESPONSE = 4;
const ALL_EXTENSION_NUMBERS_RESPONSE = 5;
const LIST_SERVICES_RESPONSE = 6;
const ERROR_RESPONSE = 7;

export class Reflection {
  readonly #files = new Map<string, FileDescriptor>();
  /** Fully qualified names of messages, fields, enums, values, services and methods → their file. */
  readonly #symbols = new Map<string, FileDescriptor>();
  readonly #messages = new Set<string>();
  readonly #services: string[] = [];

  constructor(descriptorSet: Buffer = readFileSync(DESCRIPTOR_SET_FILE)) {
    readFields(descriptorSet, (reader, number, wireType) => {
      if (number !== 1 || wireType !== LENGTH_DELIMITED) return false;
      this.#index(reader.bytes());
      return true;
    });
  }

  /** Every service the descriptors define; the server serves them all. */
  get services(): readonly string[] {
    return this.#services;
  }

  /** grpc.reflection.v1 and v1alpha, on any server with grpc-js' addService. */
  addToServer(server: {
    addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void;
  }): void {
    for (const version of ['v1', 'v1alpha']) {
      const service = `grpc.reflection.${version}.ServerReflection`;
      server.addService(
        {
          ServerReflectionInfo: {
            path: `/${service}/ServerReflectionInfo`,
            originalName: 'serverReflectionInfo',
            requestStream: true,
            responseStream: true,
            requestSerialize: (bytes: Buffer) => bytes,
            requestDeserialize: (bytes: Buffer) => bytes,
            responseSerialize: (bytes: Buffer) => bytes,
            responseDeserialize: (bytes: Buffer) => bytes,
          },
        },
        {
          ServerReflectionInfo: (stream: ServerDuplexStream<Buffer, Buffer>) => {
            stream.on('data', (request: Buffer) => stream.write(this.answer(request)));
            stream.on('end', () => stream.end());
          },
        },
      );
    }
  }

  /** One ServerReflectionResponse for one ServerReflectionRequest, both encoded. */
  answer(request: Buffer): Buffer {
    let host = '';
    let reply: Reply = this.#error(Status.INVALID_ARGUMENT, 'no request');
    try {
      readFields(request, (reader, number, wireType) => {
        if (wireType !== LENGTH_DELIMITED) return false;
        if (number === 1) host = reader.string('host');
        else if (number === 3) reply = this.#fileByName(reader.string('file_by_filename'));
        else if (number === 4) reply = this.#fileBySymbol(reader.string('file_containing_symbol'));
        else if (number === 5) {
          reader.bytes();
          reply = this.#error(Status.NOT_FOUND, 'no extensions are defined');
        } else if (number === 6) reply = this.#extensionNumbers(reader.string('type'));
        else if (number === 7) {
          reader.bytes();
          reply = [LIST_SERVICES_RESPONSE, this.#listServices()];
        } else return false;
        return true;
      });
    } catch (error) {
      reply = this.#error(Status.INVALID_ARGUMENT, (error as Error).message);
    }
    return message([
      ...(host === '' ? [] : [field(1, Buffer.from(host))]),
      field(2, request),
      field(reply[0], reply[1]),
    ]);
  }

  #index(bytes: Buffer): void {
    let name = '';
    let pkg = '';
    const dependencies: string[] = [];
    const symbols: string[] = [];
    const messages: string[] = [];
    const services: string[] = [];
    readFields(bytes, (reader, number, wireType) => {
      if (wireType !== LENGTH_DELIMITED) return false;
      const value = reader.bytes();
      if (number === 1) name = value.toString();
      else if (number === 2) pkg = value.toString();
      else if (number === 3) dependencies.push(value.toString());
      else if (number === 4) indexMessage(value, pkg, symbols, messages);
      else if (number === 5) indexEnum(value, pkg, symbols);
      else if (number === 6) {
        const service = qualified(pkg, nameOf(value));
        services.push(service);
        symbols.push(service);
        eachChild(value, 2, (method) => symbols.push(`${service}.${nameOf(method)}`));
      }
      return true;
    });
    const file = { name, bytes, dependencies };
    this.#files.set(name, file);
    for (const symbol of symbols) this.#symbols.set(symbol, file);
    for (const message of messages) this.#messages.add(message);
    this.#services.push(...services);
  }

  #fileByName(name: string): Reply {
    const file = this.#files.get(name);
    return file ? this.#withDependencies(file) : this.#error(Status.NOT_FOUND, `no file ${name}`);
  }

  #fileBySymbol(symbol: string): Reply {
    const file = this.#symbols.get(symbol.replace(/^\./, ''));
    return file
      ? this.#withDependencies(file)
      : this.#error(Status.NOT_FOUND, `no symbol ${symbol}`);
  }

  /** The file first, then every file it imports, directly or not. */
  #withDependencies(file: FileDescriptor): Reply {
    const files: FileDescriptor[] = [];
    const visit = (next: FileDescriptor) => {
      if (files.includes(next)) return;
      files.push(next);
      for (const name of next.dependencies) {
        const dependency = this.#files.get(name);
        if (dependency) visit(dependency);
      }
    };
    visit(file);
    return [FILE_DESCRIPTOR_RESPONSE, message(files.map((f) => field(1, f.bytes)))];
  }

  #extensionNumbers(type: string): Reply {
    if (!this.#messages.has(type)) return this.#error(Status.NOT_FOUND, `no message ${type}`);
    return [ALL_EXTENSION_NUMBERS_RESPONSE, message([field(1, Buffer.from(type))])];
  }

  #listServices(): Buffer {
    return message(
      this.#services.map((service) => field(1, message([field(1, Buffer.from(service))]))),
    );
  }

  #error(code: number, text: string): Reply {
    return [ERROR_RESPONSE, message([varintField(1, code), field(2, Buffer.from(text))])];
  }
}

const qualified = (scope: string, name: string) => (scope === '' ? name : `${scope}.${name}`);

/** Field 1 (name) of a descriptor message. */
function nameOf(descriptor: Buffer): string {
  let name = '';
  readFields(descriptor, (reader, number, wireType) => {
    if (number !== 1 || wireType !== LENGTH_DELIMITED) return false;
    name = reader.bytes().toString();
    return true;
  });
  return name;
}

function eachChild(descriptor: Buffer, fieldNumber: number, visit: (child: Buffer) => void) {
  readFields(descriptor, (reader, number, wireType) => {
    if (number !== fieldNumber || wireType !== LENGTH_DELIMITED) return false;
    visit(reader.bytes());
    return true;
  });
}

/** A DescriptorProto: the message, its fields and oneofs, nested messages and enums. */
function indexMessage(descriptor: Buffer, scope: string, symbols: string[], messages: string[]) {
  const name = qualified(scope, nameOf(descriptor));
  symbols.push(name);
  messages.push(name);
  eachChild(descriptor, 2, (child) => symbols.push(`${name}.${nameOf(child)}`));
  eachChild(descriptor, 3, (child) => indexMessage(child, name, symbols, messages));
  eachChild(descriptor, 4, (child) => indexEnum(child, name, symbols));
  eachChild(descriptor, 8, (child) => symbols.push(`${name}.${nameOf(child)}`));
}

/** An EnumDescriptorProto; its values are scoped beside the enum, as protobuf scopes them. */
function indexEnum(descriptor: Buffer, scope: string, symbols: string[]) {
  symbols.push(qualified(scope, nameOf(descriptor)));
  eachChild(descriptor, 2, (value) => symbols.push(qualified(scope, nameOf(value))));
}

const field = lengthDelimitedField;
const message = (fields: readonly Buffer[]) => Buffer.concat(fields);
