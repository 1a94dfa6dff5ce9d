package org.apache.samza.azure.storage;

import java.util.Map;
import org.apache.samza.azure.jni.ConfigArrays;
import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.NativeHandle;

/**
 * Azure Storage primitives of the native core for Java callers: blob leases and versioned
 * documents. Configured from Samza config keys ({@code azure.storage.connect} and the {@code
 * azure.storage.*} tuning keys; see docs/configuration.md). Thread-safe. Close it when done; a
 * forgotten close is freed by a safety net and logged.
 *
 * <p>Lease durations are 15-60 seconds, or -1 for infinite. Lease ids are UUID strings.
 */
public final class AzureStorageClient extends NativeHandle {
  private AzureStorageClient(long handle) {
    super(handle, Native::storageClose);
  }

  /** Opens a client; bad config fails with an exception naming the key. */
  public static AzureStorageClient open(Map<String, String> config) {
    return new AzureStorageClient(ConfigArrays.open(config, Native::storageOpen));
  }

  public StorageStats stats() {
    return call(h -> new StorageStats(Native.storageStats(h)));
  }

  /** Creates the container if absent; true if this call created it. */
  public boolean ensureContainer(String container) {
    return call(h -> Native.ensureContainer(h, container));
  }

  /** Acquires a lease; {@code proposedLeaseId} may be null. Returns the lease id. */
  public String acquireLease(String container, String blob, int seconds, String proposedLeaseId) {
    return call(h -> Native.leaseAcquire(h, container, blob, seconds, proposedLeaseId));
  }

  public void renewLease(String container, String blob, String leaseId) {
    run(h -> Native.leaseRenew(h, container, blob, leaseId));
  }

  public void releaseLease(String container, String blob, String leaseId) {
    run(h -> Native.leaseRelease(h, container, blob, leaseId));
  }

  /** Breaks the lease whoever holds it; returns seconds until it can be acquired. */
  public long breakLease(String container, String blob, int periodSeconds) {
    return call(h -> Native.leaseBreak(h, container, blob, periodSeconds));
  }

  public String changeLease(String container, String blob, String leaseId, String proposedLeaseId) {
    return call(h -> Native.leaseChange(h, container, blob, leaseId, proposedLeaseId));
  }

  /** Creates the document only if the blob does not exist; returns its ETag. */
  public String createDocument(String container, String blob, byte[] body) {
    return call(h -> Native.docCreate(h, container, blob, body));
  }

  public Document readDocument(String container, String blob) {
    return call(h -> Document.fromNative(Native.docRead(h, container, blob)));
  }

  /** Null while the blob is still at {@code knownEtag} (no body is transferred). */
  public Document readDocumentIfChanged(String container, String blob, String knownEtag) {
    return call(h -> Document.fromNative(Native.docReadIfChanged(h, container, blob, knownEtag)));
  }

  /** The new ETag, or null while the blob is still at {@code knownEtag}. */
  public String checkDocument(String container, String blob, String knownEtag) {
    return call(h -> Native.docCheck(h, container, blob, knownEtag));
  }

  /**
   * Replaces the document. With {@code ifMatch} it is a compare-and-swap; with {@code leaseId}
   * storage rejects it unless that lease is the blob's active lease (fencing). Either may be null.
   * Returns the new ETag.
   */
  public String replaceDocument(
      String container, String blob, byte[] body, String ifMatch, String leaseId) {
    return call(h -> Native.docReplace(h, container, blob, body, ifMatch, leaseId));
  }

  public void deleteDocument(String container, String blob, String ifMatch, String leaseId) {
    run(h -> Native.docDelete(h, container, blob, ifMatch, leaseId));
  }
}
