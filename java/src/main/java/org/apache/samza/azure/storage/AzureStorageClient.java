package org.apache.samza.azure.storage;

import java.util.Map;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeHandle;

/**
 * Azure Storage primitives of the native core for Java callers: blob leases and versioned
 * documents. Configured from Samza config keys ({@code azure.storage.connect} and the
 * {@code azure.storage.*} tuning keys; see docs/configuration.md). Thread-safe. Close it when
 * done; a forgotten close is freed by a safety net and logged.
 *
 * <p>Lease durations are 15-60 seconds, or -1 for infinite. Lease ids are UUID strings.
 */
public final class AzureStorageClient extends NativeHandle {
  private AzureStorageClient(long handle) {
    super(handle, Native::storageClose);
  }

  /** Opens a client; bad config fails with an exception naming the key. */
  public static AzureStorageClient open(Map<String, String> config) {
    Native.ensureLoaded();
    String[] keys = config.keySet().toArray(new String[0]);
    String[] values = new String[keys.length];
    for (int i = 0; i < keys.length; i++) {
      values[i] = config.get(keys[i]);
    }
    return new AzureStorageClient(Native.storageOpen(keys, values));
  }

  public StorageStats stats() {
    long h = borrow();
    try {
      return new StorageStats(Native.storageStats(h));
    } finally {
      giveBack();
    }
  }

  /** Creates the container if absent; true if this call created it. */
  public boolean ensureContainer(String container) {
    long h = borrow();
    try {
      return Native.ensureContainer(h, container);
    } finally {
      giveBack();
    }
  }

  /** Acquires a lease; {@code proposedLeaseId} may be null. Returns the lease id. */
  public String acquireLease(String container, String blob, int seconds, String proposedLeaseId) {
    long h = borrow();
    try {
      return Native.leaseAcquire(h, container, blob, seconds, proposedLeaseId);
    } finally {
      giveBack();
    }
  }

  public void renewLease(String container, String blob, String leaseId) {
    long h = borrow();
    try {
      Native.leaseRenew(h, container, blob, leaseId);
    } finally {
      giveBack();
    }
  }

  public void releaseLease(String container, String blob, String leaseId) {
    long h = borrow();
    try {
      Native.leaseRelease(h, container, blob, leaseId);
    } finally {
      giveBack();
    }
  }

  /** Breaks the lease whoever holds it; returns seconds until it can be acquired. */
  public long breakLease(String container, String blob, int periodSeconds) {
    long h = borrow();
    try {
      return Native.leaseBreak(h, container, blob, periodSeconds);
    } finally {
      giveBack();
    }
  }

  public String changeLease(String container, String blob, String leaseId, String proposedLeaseId) {
    long h = borrow();
    try {
      return Native.leaseChange(h, container, blob, leaseId, proposedLeaseId);
    } finally {
      giveBack();
    }
  }

  /** Creates the document only if the blob does not exist; returns its ETag. */
  public String createDocument(String container, String blob, byte[] body) {
    long h = borrow();
    try {
      return Native.docCreate(h, container, blob, body);
    } finally {
      giveBack();
    }
  }

  public Document readDocument(String container, String blob) {
    long h = borrow();
    try {
      return Document.fromNative(Native.docRead(h, container, blob));
    } finally {
      giveBack();
    }
  }

  /** Null while the blob is still at {@code knownEtag} (no body is transferred). */
  public Document readDocumentIfChanged(String container, String blob, String knownEtag) {
    long h = borrow();
    try {
      return Document.fromNative(Native.docReadIfChanged(h, container, blob, knownEtag));
    } finally {
      giveBack();
    }
  }

  /** The new ETag, or null while the blob is still at {@code knownEtag}. */
  public String checkDocument(String container, String blob, String knownEtag) {
    long h = borrow();
    try {
      return Native.docCheck(h, container, blob, knownEtag);
    } finally {
      giveBack();
    }
  }

  /**
   * Replaces the document. With {@code ifMatch} it is a compare-and-swap; with {@code leaseId}
   * storage rejects it unless that lease is the blob's active lease (fencing). Either may be
   * null. Returns the new ETag.
   */
  public String replaceDocument(
      String container, String blob, byte[] body, String ifMatch, String leaseId) {
    long h = borrow();
    try {
      return Native.docReplace(h, container, blob, body, ifMatch, leaseId);
    } finally {
      giveBack();
    }
  }

  public void deleteDocument(String container, String blob, String ifMatch, String leaseId) {
    long h = borrow();
    try {
      Native.docDelete(h, container, blob, ifMatch, leaseId);
    } finally {
      giveBack();
    }
  }
}
