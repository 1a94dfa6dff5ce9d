package org.apache.samza.azure.errors;

import org.apache.samza.SamzaException;

/**
 * Base of every exception thrown by the Azure coordinator. {@link #code()} is a stable string
 * shared with the native core, one per error kind; subclasses exist so callers can catch the kinds
 * they can act on. Messages never contain secrets.
 */
public class AzureCoordinationException extends SamzaException {
  private static final long serialVersionUID = 1L;

  public static final String INTERNAL = "INTERNAL";

  private final String code;

  /** Used by the native layer for unexpected failures (code {@value #INTERNAL}). */
  public AzureCoordinationException(String message) {
    this(INTERNAL, message);
  }

  protected AzureCoordinationException(String code, String message) {
    super(message);
    this.code = code;
  }

  public AzureCoordinationException(String code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  /** Stable error code, e.g. {@code LEASE_LOST}. */
  public String code() {
    return code;
  }
}
