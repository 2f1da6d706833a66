// What the ACME certificate source keeps across restarts. The proxy implements it over its state
// Secret; keeping the account, the certificate and the order history there is what stops a
// restarting (or crash-looping) proxy from registering again, re-issuing, or burning the CA's
// rate limits.

/** The ACME account: its key and, once registered, its URL at the CA it was registered with. */
export interface StoredAccount {
  readonly directoryUrl: string;
  readonly keyPem: string;
  readonly url?: string;
}

/** The certificate being served and the key it was issued for. */
export interface StoredCertificate {
  readonly directoryUrl: string;
  /** Leaf first, then the chain, as the CA returned it. */
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CertificateStore {
  loadAccount(): Promise<StoredAccount | undefined>;
  saveAccount(account: StoredAccount): Promise<void>;
  loadCertificate(): Promise<StoredCertificate | undefined>;
  saveCertificate(certificate: StoredCertificate): Promise<void>;
  /** When orders were placed (epoch ms), oldest first; the source prunes what has aged out. */
  loadOrderHistory(): Promise<readonly number[]>;
  saveOrderHistory(history: readonly number[]): Promise<void>;
}

/** In-memory store, for tests and for callers that persist nothing (every restart re-issues). */
export class MemoryCertificateStore implements CertificateStore {
  account: StoredAccount | undefined;
  certificate: StoredCertificate | undefined;
  orders: readonly number[] = [];

  loadAccount(): Promise<StoredAccount | undefined> {
    return Promise.resolve(this.account);
  }

  saveAccount(account: StoredAccount): Promise<void> {
    this.account = account;
    return Promise.resolve();
  }

  loadCertificate(): Promise<StoredCertificate | undefined> {
    return Promise.resolve(this.certificate);
  }

  saveCertificate(certificate: StoredCertificate): Promise<void> {
    this.certificate = certificate;
    return Promise.resolve();
  }

  loadOrderHistory(): Promise<readonly number[]> {
    return Promise.resolve(this.orders);
  }

  saveOrderHistory(history: readonly number[]): Promise<void> {
    this.orders = [...history];
    return Promise.resolve();
  }
}

/** Keys of KeyValueCertificateStore (valid Secret data keys). */
export const STORE_KEYS = {
  account: "acme-account.json",
  certificate: "acme-certificate.json",
  orders: "acme-orders.json",
} as const;

/** String values under fixed keys: a Secret's data, a directory of files. */
export interface KeyValueStorage {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

/** A CertificateStore over string values (the proxy's state Secret, or files in tests). */
export class KeyValueCertificateStore implements CertificateStore {
  private readonly storage: KeyValueStorage;

  constructor(storage: KeyValueStorage) {
    this.storage = storage;
  }

  async loadAccount(): Promise<StoredAccount | undefined> {
    return this.read<StoredAccount>(STORE_KEYS.account);
  }

  saveAccount(account: StoredAccount): Promise<void> {
    return this.storage.set(STORE_KEYS.account, JSON.stringify(account));
  }

  async loadCertificate(): Promise<StoredCertificate | undefined> {
    return this.read<StoredCertificate>(STORE_KEYS.certificate);
  }

  saveCertificate(certificate: StoredCertificate): Promise<void> {
    return this.storage.set(STORE_KEYS.certificate, JSON.stringify(certificate));
  }

  async loadOrderHistory(): Promise<readonly number[]> {
    const history = await this.read<unknown>(STORE_KEYS.orders);
    return Array.isArray(history) ? history.filter((at): at is number => typeof at === "number") : [];
  }

  saveOrderHistory(history: readonly number[]): Promise<void> {
    return this.storage.set(STORE_KEYS.orders, JSON.stringify(history));
  }

  private async read<T>(key: string): Promise<T | undefined> {
    const text = await this.storage.get(key);
    if (text === undefined || text === "") return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      // A damaged value is treated as absent: the source re-creates it (within the rate limit).
      return undefined;
    }
  }
}
