/**
 * Per-cluster TLS credentials in the reference's profile: one self-signed certificate that is CA, scheduler,
 * worker and client certificate at once. The key is ECDSA P-256 where the reference uses RSA-2048: Python's
 * ssl takes either, and it is made in about a millisecond instead of a hundred, which bounds how fast
 * clusters can be created. Generation runs off the event loop (WebCrypto).
 */
import { webcrypto } from "node:crypto";

/** @peculiar/x509, loaded at the first cluster (about 3 MiB of heap an idle gateway does not need). */
let x509Module: Promise<typeof import("@peculiar/x509")> | undefined;
function loadX509(): Promise<typeof import("@peculiar/x509")> {
  x509Module ??= (async () => {
    await import("reflect-metadata");
    const x509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })();
  return x509Module;
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY_MS = 86_400_000;

export interface Keypair {
  /** PEM certificate. */
  cert: string;
  /** Unencrypted PKCS#8 PEM private key. */
  key: string;
}

/** Makes the credentials of one cluster; the SAN carries the bare cluster name. */
export async function newKeypair(clusterName: string): Promise<Keypair> {
  const x509 = await loadX509();
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=dask-internal",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: clusterName },
        { type: "dns", value: "dask-internal" },
        { type: "dns", value: "skein-internal" },
      ]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { cert: pem("CERTIFICATE", Buffer.from(cert.rawData)), key: pem("PRIVATE KEY", pkcs8) };
}

/** A positive 16-byte serial number in hex (the top bit cleared keeps it positive in DER). */
function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f;
  return Buffer.from(bytes).toString("hex");
}

function pem(label: string, der: Buffer): string {
  const body = der.toString("base64").match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}
