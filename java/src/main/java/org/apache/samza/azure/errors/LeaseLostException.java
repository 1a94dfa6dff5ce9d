package org.apache.samza.azure.errors;

/**
 * This party does not (or no longer) hold the lease; storage rejected the renew or the fenced
 * write.
 */
public class LeaseLostException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "LEASE_LOST";

  public LeaseLostException(String message) {
    super(CODE, message);
  }
}
