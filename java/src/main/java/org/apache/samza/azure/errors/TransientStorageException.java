package org.apache.samza.azure.errors;

/** Throttling, server errors, timeouts or I/O failures that outlived the retry budget. */
public class TransientStorageException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "TRANSIENT";

  public TransientStorageException(String message) {
    super(CODE, message);
  }
}
