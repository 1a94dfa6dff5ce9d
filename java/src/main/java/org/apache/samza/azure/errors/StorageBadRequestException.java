package org.apache.samza.azure.errors;

/** Storage (or local validation) rejected the request as malformed or over a limit. */
public class StorageBadRequestException extends AzureCoordinationException {
  private static final long serialVersionUID = 1L;

  public static final String CODE = "BAD_REQUEST";

  public StorageBadRequestException(String message) {
    super(CODE, message);
  }
}
